using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Read.Bench.Reporting;

namespace Read.Bench.Load;

/// <summary>
/// `read-bench fairness`: one light tenant's predict latency (p50 / p99) alone, then beside a tenant flooding the API
/// with big requests, in one run of the embedded API with batching on. Issue 10 reported a 25 MB-request flood at
/// concurrency 8 pushing another tenant's p99 from 96 ms to 4.1 s; this measures it after the round-robin batcher.
/// Reuses (or trains) the load test's adapters: the light tenant is load-tenant-0, the flooder load-tenant-1.
/// </summary>
internal static class FairnessCommand
{
    // Accented words, so the default JSON encoder writes many characters as \uXXXX escapes: bodies of the size the issue
    // reported, while each text stays within Read:MaxPredictTextChars.
    private static readonly string[] FloodWords = ["été", "déjà", "où", "à", "élève", "thé", "crème", "brûlée", "naïve", "résumé", "über", "ça"];

    public static Command Create()
    {
        var seconds = new Option<int>("--seconds") { DefaultValueFactory = _ => 30, Description = "Duration of each phase (light alone; light beside the flood)." };
        var lightConcurrency = new Option<int>("--light-concurrency") { DefaultValueFactory = _ => 1, Description = "The light tenant's closed-loop clients." };
        var lightTexts = new Option<int>("--light-texts") { DefaultValueFactory = _ => 8, Description = "Texts per light request (4 to ~40 words each)." };
        var floodConcurrency = new Option<int>("--flood-concurrency") { DefaultValueFactory = _ => 8, Description = "The flooding tenant's closed-loop clients." };
        var floodInputs = new Option<int>("--flood-inputs") { DefaultValueFactory = _ => 256, Description = "Inputs per flood request (Read:MaxPredictBatch is 256)." };
        var floodChars = new Option<int>("--flood-chars") { DefaultValueFactory = _ => 20_000, Description = "Characters per flood text and text_pair (Read:MaxPredictTextChars is 20000)." };
        var tag = new Option<string>("--tag") { DefaultValueFactory = _ => "", Description = "Suffix of the report's file name (inference-fairness<tag>.md), to keep a before/after pair." };
        var settings = new Option<string[]>("--setting") { AllowMultipleArgumentsPerToken = true, Description = "Extra API settings, key=value (e.g. Read:Inference:MaxTenantBatchRows=64)." };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data/load-test", Description = "API data directory; the load test's adapters are reused." };
        var apiDll = new Option<string>("--api-dll") { DefaultValueFactory = _ => "src/Read.Api/bin/Release/net10.0/Read.Api.dll" };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var command = new Command("fairness", "A light tenant's predict latency alone and beside a tenant flooding big requests (batching on).")
        {
            seconds, lightConcurrency, lightTexts, floodConcurrency, floodInputs, floodChars, tag, settings, data, apiDll, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            var run = new Run(TimeSpan.FromSeconds(parse.GetValue(seconds)), parse.GetValue(lightConcurrency), parse.GetValue(lightTexts), parse.GetValue(floodConcurrency),
                parse.GetValue(floodInputs), parse.GetValue(floodChars), parse.GetValue(tag) ?? "", parse.GetValue(settings) ?? [], parse.GetValue(data)!,
                Path.GetFullPath(parse.GetValue(apiDll)!), parse.GetValue(output)!);
            await RunAsync(run, ct);
        });
        return command;
    }

    private sealed record Run(
        TimeSpan Phase, int LightConcurrency, int LightTexts, int FloodConcurrency, int FloodInputs, int FloodChars, string Tag, string[] Settings, string Data,
        string ApiDll, string Output);

    /// <summary>What the flooding tenant got during the second phase.</summary>
    private sealed record FloodResult(int Requests, IReadOnlyDictionary<int, int> Errors, double P50Ms, long BodyBytes);

    private static async Task RunAsync(Run run, CancellationToken ct)
    {
        var settings = new Dictionary<string, string>
        {
            // The batcher under test, not the per-tenant limiter: its limits would refuse the flood by design.
            ["Read:RateLimits:Enabled"] = "false",
            // One line per batch (rows, width, stage times) in api.log.
            ["Serilog:MinimumLevel:Override:Read.Api.Inference"] = "Debug",
        };
        foreach (var setting in run.Settings)
        {
            var (key, value) = setting.Split('=', 2) is [var k, var v] ? (k, v) : throw new ArgumentException($"--setting {setting}: expected key=value.");
            settings[key] = value;
        }

        var corpus = LoadTestCommand.Corpus(400, seed: 99);
        IReadOnlyList<LoadAdapter> adapters;
        await using (var setup = await ApiProcess.StartAsync(run.ApiDll, run.Data, settings, ct))
            adapters = await LoadTestCommand.AdaptersAsync(setup, run.Data, ct);
        var light = adapters.First(a => a.Tenant == "load-tenant-0");
        var flooder = adapters.First(a => a.Tenant == "load-tenant-1");

        await using var api = await ApiProcess.StartAsync(run.ApiDll, run.Data, settings, ct);
        var body = FloodBody(run.FloodInputs, run.FloodChars);
        Console.WriteLine($"API pid {api.ProcessId}; light tenant {light.Tenant} ({light.Id}), c{run.LightConcurrency} × {run.LightTexts} texts; " +
                          $"flooder {flooder.Tenant} ({flooder.Id}), c{run.FloodConcurrency} × {run.FloodInputs} inputs of {run.FloodChars} + {run.FloodChars} characters, {body.Length / 1e6:F1} MB per body");

        // Warm-up: both adapters loaded, first-call costs paid.
        await LoadDriver.RunAsync(api, [light], run.LightConcurrency, run.LightTexts, TimeSpan.FromSeconds(5), corpus, null, ct);
        using (var warm = api.Client(flooder.ApiKey, 1))
            Console.WriteLine($"warm-up flood request: {(int)await LoadDriver.SendAsync(() => warm.PostAsync($"/v1/adapters/{flooder.Id}/predict", Json(body), ct), ct)}");

        var before = await api.MetricsAsync(ct);
        var alone = await LoadDriver.RunAsync(api, [light], run.LightConcurrency, run.LightTexts, run.Phase, corpus, null, ct);
        var aloneInside = LoadTestCommand.ServerSide.From(before, await api.MetricsAsync(ct), alone.Seconds);
        Console.WriteLine($"light alone:        p50 {alone.P50Ms,6:F0} ms  p99 {alone.P99Ms,6:F0} ms  {alone.Requests} requests  errors {alone.Errors}  | {aloneInside}");

        // The flood starts first and runs until the light phase ends; its queue is full before the light tenant measures.
        using var stopFlood = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var flood = FloodAsync(api, flooder, body, run.FloodConcurrency, stopFlood.Token);
        await Task.Delay(TimeSpan.FromSeconds(5), ct);
        before = await api.MetricsAsync(ct);
        var beside = await LoadDriver.RunAsync(api, [light], run.LightConcurrency, run.LightTexts, run.Phase, corpus, null, ct);
        var besideInside = LoadTestCommand.ServerSide.From(before, await api.MetricsAsync(ct), beside.Seconds);
        await stopFlood.CancelAsync();
        var flooded = await flood;
        Console.WriteLine($"light beside flood: p50 {beside.P50Ms,6:F0} ms  p99 {beside.P99Ms,6:F0} ms  {beside.Requests} requests  errors {beside.Errors}  | {besideInside}");
        Console.WriteLine($"flood: {flooded.Requests} requests answered, {FloodRate(beside, besideInside):F1} texts/s served (server), p50 {flooded.P50Ms:F0} ms, errors {LoadErrors.Describe(flooded.Errors)}");

        await WriteReportAsync(run, alone, beside, flooded, aloneInside, besideInside, ct);
    }

    /// <summary>
    /// The flood's texts per second while the light tenant measured, from the API's batch rows less the light tenant's: a
    /// flood request takes tens of seconds, so counting answered ones over a phase would be too coarse.
    /// </summary>
    private static double FloodRate(LoadResult light, LoadTestCommand.ServerSide inside) => (inside.Rows - light.Texts) / inside.WallSeconds;

    /// <summary>The flood's one body (every request sends it): inputs of accented words with a text_pair each.</summary>
    private static byte[] FloodBody(int inputs, int chars)
    {
        var random = new Random(7);
        string Text()
        {
            var sb = new StringBuilder(chars + 16);
            while (sb.Length < chars)
                sb.Append(FloodWords[random.Next(FloodWords.Length)]).Append(' ');
            return sb.ToString(0, chars);
        }

        return JsonSerializer.SerializeToUtf8Bytes(new { inputs = Enumerable.Range(0, inputs).Select(_ => new { text = Text(), text_pair = Text() }).ToArray(), top_k = 2 });
    }

    private static ByteArrayContent Json(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private static async Task<FloodResult> FloodAsync(ApiProcess api, LoadAdapter flooder, byte[] body, int concurrency, CancellationToken stop)
    {
        using var client = api.Client(flooder.ApiKey, concurrency);
        var latencies = new List<double>();
        var errors = new Dictionary<int, int>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (!stop.IsCancellationRequested)
            {
                var started = clock.Elapsed;
                HttpStatusCode status;
                try
                {
                    status = await LoadDriver.SendAsync(() => client.PostAsync($"/v1/adapters/{flooder.Id}/predict", Json(body), stop), stop);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return; // the phase ended mid-request: not counted
                }

                lock (latencies)
                {
                    if (status == HttpStatusCode.OK)
                        latencies.Add((clock.Elapsed - started).TotalMilliseconds);
                    else
                        errors[(int)status] = errors.GetValueOrDefault((int)status) + 1;
                }

                if (status == HttpStatusCode.TooManyRequests)
                    await Task.Delay(50, CancellationToken.None);
            }
        }));
        var sorted = latencies.Order().ToArray();
        return new FloodResult(sorted.Length, errors, LoadDriver.Percentile(sorted, 0.5), body.LongLength);
    }

    private static async Task WriteReportAsync(
        Run run, LoadResult alone, LoadResult beside, FloodResult flood, LoadTestCommand.ServerSide aloneInside,
        LoadTestCommand.ServerSide besideInside, CancellationToken ct)
    {
        var table = new MarkdownTable("light tenant", "requests ok", "p50 ms", "p99 ms", "errors", "forwards", "rows/forward", "ms/text in forward",
            "flood requests answered", "flood texts/s (server)", "flood p50 ms", "flood errors");
        table.Add("alone", alone.Requests, alone.P50Ms, alone.P99Ms, alone.Errors, aloneInside.Forwards, aloneInside.RowsPerForward, aloneInside.MsPerText, "", "", "", "");
        table.Add($"beside the flood (c{run.FloodConcurrency})", beside.Requests, beside.P50Ms, beside.P99Ms, beside.Errors, besideInside.Forwards, besideInside.RowsPerForward,
            besideInside.MsPerText, flood.Requests, FloodRate(beside, besideInside), flood.P50Ms, LoadErrors.Describe(flood.Errors));
        var extra = string.Join(' ', run.Settings.Select(s => $"--setting {s}"));
        var command = "dotnet build src/Read.Api -c Release && dotnet run --project bench/Read.Bench -c Release -- fairness " +
                      $"--seconds {run.Phase.TotalSeconds:F0} --light-concurrency {run.LightConcurrency} --flood-concurrency {run.FloodConcurrency} " +
                      $"--flood-inputs {run.FloodInputs} --flood-chars {run.FloodChars}{(run.Tag.Length > 0 ? $" --tag {run.Tag}" : "")}{(extra.Length > 0 ? " " + extra : "")}";
        var markdown =
            $"# Inference fairness: a light tenant beside a flooding one\n\nMeasured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores. Command:\n\n```\n{command}\n```\n\n" +
            $"The embedded API (SQLite, batching on, defaults otherwise: `MaxBatchRows` 64, `MaxQueuedRequests` 256; per-tenant rate limits off" +
            $"{(run.Settings.Length > 0 ? $"; {string.Join(", ", run.Settings.Select(s => $"`{s}`"))}" : "")}) on loopback with all-MiniLM-L6-v2 and the load " +
            $"test's adapters (max_length 64). The light tenant (load-tenant-0, one adapter) runs a closed loop of {run.LightConcurrency} client(s), " +
            $"{run.LightTexts} texts of 4 to ~40 words per request, for {run.Phase.TotalSeconds:F0} s alone, then for {run.Phase.TotalSeconds:F0} s while a second tenant " +
            $"(load-tenant-1, its own adapter) sends {run.FloodConcurrency} concurrent requests of {run.FloodInputs} inputs, each a text and a text_pair of " +
            $"{run.FloodChars} characters (accented words, so JSON-escaped: {flood.BodyBytes / 1e6:F1} MB per body), each next one as soon as the last is answered; " +
            "the flood starts 5 s before the light tenant's second phase and stops after it. Forwards, rows per forward and ms/text (tokenize + forward) come " +
            "from the API's /metrics over each phase (the flood's texts/s: rows served less the light tenant's). With few light requests in a phase, p99 is close to the slowest one. The load generator shares the host's " + Environment.ProcessorCount + " cores with the API.\n\n" +
            table.ToMarkdown() + "\n" +
            $"Light tenant p99 beside the flood / alone: {beside.P99Ms / alone.P99Ms:F1}× ({alone.P99Ms:F0} → {beside.P99Ms:F0} ms); p50 {alone.P50Ms:F0} → {beside.P50Ms:F0} ms.\n";
        Directory.CreateDirectory(run.Output);
        var stem = Path.Combine(run.Output, "inference-fairness" + run.Tag);
        await File.WriteAllTextAsync(stem + ".md", markdown, ct);
        await File.WriteAllTextAsync(stem + ".csv", table.ToCsv(), ct);
        Console.WriteLine("\n" + markdown);
    }
}
