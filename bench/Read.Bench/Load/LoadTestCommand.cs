using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Read.Bench.Reporting;

namespace Read.Bench.Load;

/// <summary>
/// `read-bench load-test`: the embedded API (child process, loopback) with MiniLM and 16 small trained adapters of 4
/// tenants, driven at several concurrencies with 8 texts per request, one adapter vs all 16 mixed, batching on and
/// off in one run; an overload point past the queue bound; and a sustained run sampling the API's RSS.
/// </summary>
internal static class LoadTestCommand
{
    private const int Tenants = 4;
    private const int AdaptersPerTenant = 4;
    private const int QueueCapacity = 64; // the documented capacity: Read:Inference:MaxQueuedRequests for this run

    private static readonly string[] Positive = ["good", "great", "excellent", "wonderful", "lovely", "happy", "nice", "superb"];
    private static readonly string[] Negative = ["bad", "awful", "terrible", "poor", "dreadful", "sad", "boring", "broken"];
    private static readonly string[] Subjects = ["the movie", "this phone", "our dinner", "the service", "that book", "my trip", "the hotel", "the update"];

    public static Command Create()
    {
        var concurrency = new Option<int[]>("--concurrency") { AllowMultipleArgumentsPerToken = true, Description = "Closed-loop workers per point (default 1 4 16 64)." };
        var seconds = new Option<int>("--seconds") { DefaultValueFactory = _ => 10, Description = "Duration of each point." };
        var sustained = new Option<int>("--sustained-seconds") { DefaultValueFactory = _ => 60, Description = "Duration of the sustained run (batching on, mixed, concurrency 16); 300 for the issue's 5 minutes." };
        var texts = new Option<int>("--texts") { DefaultValueFactory = _ => 8, Description = "Texts per request." };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data/load-test", Description = "API data directory; adapters trained once are reused." };
        var apiDll = new Option<string>("--api-dll") { DefaultValueFactory = _ => "src/Read.Api/bin/Release/net10.0/Read.Api.dll" };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var command = new Command("load-test", "Predict throughput, latency, errors and API RSS under concurrent load; batching on vs off.")
        {
            concurrency, seconds, sustained, texts, data, apiDll, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            var levels = parse.GetValue(concurrency) is { Length: > 0 } c ? c : [1, 4, 16, 64];
            var options = new Run(levels, TimeSpan.FromSeconds(parse.GetValue(seconds)), TimeSpan.FromSeconds(parse.GetValue(sustained)), parse.GetValue(texts),
                parse.GetValue(data)!, Path.GetFullPath(parse.GetValue(apiDll)!), parse.GetValue(output)!);
            await RunAsync(options, ct);
        });
        return command;
    }

    private sealed record Run(int[] Levels, TimeSpan Point, TimeSpan Sustained, int Texts, string Data, string ApiDll, string Output);

    private sealed record Row(string Batching, string Scenario, LoadResult Result, ServerSide Inside);

    /// <summary>
    /// What the API's /metrics say about one point: forwards run, mean rows and padded width per forward, the share of
    /// the point's wall time spent in backbone forwards (tokenize + forward), and per-text forward milliseconds.
    /// </summary>
    internal sealed record ServerSide(double Forwards, double Rows, double ForwardSeconds, double WallSeconds, double Width, double HeadsSeconds)
    {
        public double RowsPerForward => Forwards == 0 ? 0 : Rows / Forwards;

        public double Busy => ForwardSeconds / WallSeconds;

        public double MsPerText => Rows == 0 ? 0 : ForwardSeconds * 1000 / Rows;

        public static ServerSide From(Dictionary<string, double> before, Dictionary<string, double> after, double wall)
        {
            double Delta(string name) => after.GetValueOrDefault(name) - before.GetValueOrDefault(name);
            var widthCount = Delta("read_inference_batch_width_count");
            return new ServerSide(
                Delta("read_inference_batch_rows_count"), Delta("read_inference_batch_rows_sum"), Delta("read_backbone_forward_duration_seconds_sum"), wall,
                widthCount == 0 ? double.NaN : Delta("read_inference_batch_width_sum") / widthCount, Delta("read_inference_batch_stage_duration_seconds_sum:heads"));
        }

        public override string ToString() =>
            $"{Forwards:F0} forwards, {RowsPerForward:F1} rows/forward, width {Width:F0}, forward busy {Busy:P0}, {MsPerText:F1} ms/text in forward, heads {HeadsSeconds:F2} s";
    }

    private static Dictionary<string, string> Settings(bool batching) => new()
    {
        ["Read:Inference:Batching"] = batching ? "true" : "false",
        ["Read:Inference:MaxQueuedRequests"] = QueueCapacity.ToString(CultureInfo.InvariantCulture),
        // The service under test, not the per-tenant limiter: its limits would turn the high points into 429s by design.
        ["Read:RateLimits:Enabled"] = "false",
        // One line per batch (rows, width, stage times, thread) in api.log.
        ["Serilog:MinimumLevel:Override:Read.Api.Inference"] = "Debug",
    };

    private static async Task RunAsync(Run run, CancellationToken ct)
    {
        var corpus = Corpus(400, seed: 99);
        var rows = new List<Row>();
        var rssSamples = new List<double>();
        LoadResult? longRun = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        IReadOnlyList<LoadAdapter> adapters;
        await using (var setup = await ApiProcess.StartAsync(run.ApiDll, run.Data, Settings(batching: true), ct))
            adapters = await AdaptersAsync(setup, run.Data, ct);
        var trainSeconds = clock.Elapsed.TotalSeconds;

        // Both modes run side by side, each in its own process on its own copy of the data, and every point is measured
        // on then off back to back: on a shared machine the load changes by the minute, so points taken minutes apart
        // would compare the neighbours' builds rather than the batcher.
        var offData = run.Data.TrimEnd('/') + "-off";
        if (Directory.Exists(offData))
            Directory.Delete(offData, recursive: true);
        CopyDirectory(run.Data, offData);
        await using var on = await ApiProcess.StartAsync(run.ApiDll, run.Data, Settings(batching: true), ct);
        await using var off = await ApiProcess.StartAsync(run.ApiDll, offData, Settings(batching: false), ct);
        var apis = new[] { ("on", on), ("off", off) };
        foreach (var (mode, api) in apis)
        {
            Console.WriteLine($"API pid {api.ProcessId} at {api.Address}, batching {mode}, RSS {api.RssMb():F0} MB");
            // Warm-up: backbone and every side network loaded, first-call costs paid before measuring.
            await LoadDriver.RunAsync(api, adapters, 4, run.Texts, TimeSpan.FromSeconds(5), corpus, null, ct);
        }

        foreach (var (scenario, set) in new[] { ("1 adapter", (IReadOnlyList<LoadAdapter>)adapters.Take(1).ToList()), ("16 adapters, 4 tenants", adapters) })
        {
            foreach (var level in run.Levels.Append(QueueCapacity * 2))
            {
                foreach (var (mode, api) in apis)
                {
                    var before = await api.MetricsAsync(ct);
                    var result = await LoadDriver.RunAsync(api, set, level, run.Texts, run.Point, corpus, null, ct);
                    var inside = ServerSide.From(before, await api.MetricsAsync(ct), result.Seconds);
                    rows.Add(new Row(mode, scenario, result, inside));
                    Console.WriteLine($"batching {mode,-3} {scenario,-24} c{level,-4} {result.TextsPerSecond,8:F1} texts/s  p50 {result.P50Ms,7:F0} ms  p99 {result.P99Ms,7:F0} ms  errors {result.Errors}  RSS {result.RssBeforeMb:F0}→{result.RssAfterMb:F0} MB  | {inside}");
                }
            }
        }

        if (run.Sustained > TimeSpan.Zero)
        {
            rssSamples.Add(on.RssMb());
            longRun = await LoadDriver.RunAsync(on, adapters, 16, run.Texts, run.Sustained, corpus, rss => { lock (rssSamples) rssSamples.Add(rss); }, ct);
            rssSamples.Add(on.RssMb());
            Console.WriteLine($"sustained {run.Sustained.TotalSeconds:F0} s: {longRun.TextsPerSecond:F0} texts/s, errors {longRun.Errors}, RSS {rssSamples[0]:F0} → {rssSamples[^1]:F0} MB (max {rssSamples.Max():F0})");
        }

        await WriteReportAsync(run, rows.OrderBy(r => r.Batching != "on").ToList(), longRun, rssSamples, trainSeconds, ct);
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var directory in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(directory.Replace(from, to, StringComparison.Ordinal));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("api.log", StringComparison.Ordinal)))
            File.Copy(file, file.Replace(from, to, StringComparison.Ordinal));
    }

    /// <summary>The 16 adapters: read back from the data directory, or trained now (4 tenants × 4 small jobs on MiniLM).</summary>
    internal static async Task<IReadOnlyList<LoadAdapter>> AdaptersAsync(ApiProcess api, string data, CancellationToken ct)
    {
        var state = Path.Combine(data, "load-test-adapters.json");
        if (File.Exists(state))
            return JsonSerializer.Deserialize<List<LoadAdapter>>(await File.ReadAllTextAsync(state, ct))!;
        using var admin = api.Client(ApiProcess.AdminKey, 4);
        var jobs = new List<(string Tenant, string Key, string Job)>();
        for (var t = 0; t < Tenants; t++)
        {
            var tenant = await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name = $"load-tenant-{t}" }, ct)).EnsureSuccessStatusCode()
                .Content.ReadFromJsonAsync<JsonElement>(ct);
            var key = tenant.GetProperty("api_key").GetString()!;
            using var client = api.Client(key, 4);
            for (var a = 0; a < AdaptersPerTenant; a++)
            {
                using var form = new MultipartFormDataContent();
                var file = new ByteArrayContent(Dataset(64, seed: t * 10 + a));
                file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
                form.Add(file, "file", $"load-{t}-{a}.jsonl");
                var fileId = (await (await client.PostAsync("/v1/files", form, ct)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("id").GetString();
                var job = await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new
                {
                    backbone = "all-minilm-l6-v2", training_file = fileId,
                    hyperparameters = new { epochs = 3, batch_size = 16, max_length = 64, learning_rate = 0.005 },
                }, ct)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>(ct);
                jobs.Add(($"load-tenant-{t}", key, job.GetProperty("id").GetString()!));
            }
        }

        var adapters = new List<LoadAdapter>();
        foreach (var (tenant, key, jobId) in jobs)
        {
            using var client = api.Client(key, 1);
            while (true)
            {
                var job = await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}", ct);
                var status = job.GetProperty("status").GetString();
                if (status == "succeeded")
                {
                    adapters.Add(new LoadAdapter(tenant, key, job.GetProperty("adapter_id").GetString()!));
                    Console.WriteLine($"trained {adapters.Count}/{jobs.Count}: {adapters[^1].Id} ({tenant})");
                    break;
                }

                if (status is "failed" or "cancelled")
                    throw new InvalidOperationException($"Job {jobId} {status}: {job}");
                await Task.Delay(500, ct);
            }
        }

        await File.WriteAllTextAsync(state, JsonSerializer.Serialize(adapters), ct);
        return adapters;
    }

    private static byte[] Dataset(int count, int seed)
    {
        var random = new Random(seed);
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var positive = i % 2 == 0;
            var words = positive ? Positive : Negative;
            sb.Append(JsonSerializer.Serialize(new { text = $"{Subjects[random.Next(Subjects.Length)]} was {words[random.Next(words.Length)]} and {words[random.Next(words.Length)]}", label = positive ? "positive" : "negative" }))
                .Append('\n');
        }

        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    // Predict texts of varied length (4 to about 40 words), so padding in a shared batch is realistic.
    internal static string[] Corpus(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var clauses = random.Next(1, 8);
            return string.Join(", and ", Enumerable.Range(0, clauses).Select(_ =>
            {
                var words = random.Next(2) == 0 ? Positive : Negative;
                return $"{Subjects[random.Next(Subjects.Length)]} was {words[random.Next(words.Length)]}";
            }));
        }).ToArray();
    }

    private static async Task WriteReportAsync(Run run, List<Row> rows, LoadResult? longRun, List<double> rss, double trainSeconds, CancellationToken ct)
    {
        var table = new MarkdownTable("batching", "adapters", "concurrency", "texts/s", "p50 ms", "p99 ms", "requests ok", "errors (status×count)", "API RSS before MB", "API RSS after MB");
        foreach (var row in rows)
        {
            var r = row.Result;
            table.Add(row.Batching, row.Scenario, r.Concurrency, r.TextsPerSecond, r.P50Ms, r.P99Ms, r.Requests, r.Errors, r.RssBeforeMb, r.RssAfterMb);
        }

        var aims = new StringBuilder();
        double Rate(string batching, string scenario, int level) =>
            rows.Single(r => r.Batching == batching && r.Scenario == scenario && r.Result.Concurrency == level).Result.TextsPerSecond;
        foreach (var batching in new[] { "on", "off" })
        {
            var ratios = run.Levels.Select(l => (Level: l, Ratio: Rate(batching, "16 adapters, 4 tenants", l) / Rate(batching, "1 adapter", l))).ToList();
            aims.AppendLine(CultureInfo.InvariantCulture, $"- Batching {batching}: mixed / single throughput at c{string.Join(", c", ratios.Select(r => r.Level))}: " +
                $"{string.Join(", ", ratios.Select(r => r.Ratio.ToString("F2", CultureInfo.InvariantCulture)))} (aim ≥ 0.90 at every concurrency: {(ratios.All(r => r.Ratio >= 0.9) ? "met" : "not met")}).");
            if (run.Levels.Contains(1) && run.Levels.Contains(16))
            {
                var single = Rate(batching, "1 adapter", 16) / Rate(batching, "1 adapter", 1);
                var mixed = Rate(batching, "16 adapters, 4 tenants", 16) / Rate(batching, "16 adapters, 4 tenants", 1);
                aims.AppendLine(CultureInfo.InvariantCulture, $"- Batching {batching}: c16 / c1 throughput {single:F2} (1 adapter), {mixed:F2} (mixed) (aim ≥ 3: {(single >= 3 && mixed >= 3 ? "met" : "not met")}).");
            }

            var below = rows.Where(r => r.Batching == batching && r.Result.Concurrency <= QueueCapacity).Sum(r => r.Result.ErrorsByStatus.Values.Sum());
            var above = rows.Where(r => r.Batching == batching && r.Result.Concurrency > QueueCapacity).SelectMany(r => r.Result.ErrorsByStatus)
                .GroupBy(e => e.Key).ToDictionary(g => g.Key, g => g.Sum(e => e.Value));
            // Past the bound the queue must actually refuse: no error at all there means it never filled, or never said so.
            var refused = above.GetValueOrDefault(429) > 0;
            aims.AppendLine(CultureInfo.InvariantCulture, $"- Batching {batching}: errors at concurrency ≤ {QueueCapacity} (the queue bound): {below}; above it: " +
                $"{(above.Count == 0 ? "none" : LoadErrors.Describe(above))} " +
                $"(aim: zero below, 429s and only 429s above: {(below == 0 && refused && above.Keys.All(k => k == 429) ? "met" : "not met")}" +
                $"{(refused ? "" : "; no 429 above the bound")}).");
        }

        var sustained = longRun is null ? "No sustained run (--sustained-seconds 0).\n" :
            $"Sustained: batching on, 16 adapters, concurrency 16, {run.Sustained.TotalSeconds:F0} s: {longRun.TextsPerSecond:F0} texts/s, p50 {longRun.P50Ms:F0} ms, " +
            $"p99 {longRun.P99Ms:F0} ms, errors {longRun.Errors}. API RSS sampled every 5 s: first {rss[0]:F0} MB, last {rss[^1]:F0} MB, min {rss.Min():F0}, " +
            $"max {rss.Max():F0} MB; last − first {rss[^1] - rss[0]:F0} MB.\n\nRSS samples (MB): {string.Join(", ", rss.Select(r => r.ToString("F0", CultureInfo.InvariantCulture)))}\n";
        var command = $"dotnet build src/Read.Api -c Release && dotnet run --project bench/Read.Bench -c Release -- load-test --seconds {run.Point.TotalSeconds:F0} " +
                      $"--sustained-seconds {run.Sustained.TotalSeconds:F0} --concurrency {string.Join(' ', run.Levels)}";
        var markdown =
            $"# Inference under load: cross-request batching on vs off\n\nMeasured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores. Command:\n\n```\n{command}\n```\n\n" +
            $"The embedded API (SQLite, in-process jobs) runs as a child process on loopback with all-MiniLM-L6-v2; 16 adapters of 4 tenants were trained " +
            $"through the API (64 examples, 3 epochs, max_length 64 each; {trainSeconds:F0} s including start-up, or read back from an earlier run). Each point is a closed loop " +
            $"of `concurrency` clients for {run.Point.TotalSeconds:F0} s against one of two API processes running side by side (batching on; batching off, on a copy of the same data), each point measured on then off back to back, each request {run.Texts} texts (4 to ~40 words) with top_k 2; \"16 adapters\" cycles requests through " +
            $"all 16, so concurrent requests belong to different adapters and tenants. The last concurrency of each block ({QueueCapacity * 2}) is past the queue bound " +
            $"(`Read:Inference:MaxQueuedRequests` = {QueueCapacity}); clients back off 50 ms after a 429. Per-tenant rate limits are off for this run " +
            "(`Read:RateLimits:Enabled=false`): they would answer 429 by design. RSS is the API process's VmRSS. The machine was shared with other engineers building and testing at the same time, and the load generator runs on the same cores as the API, so absolute figures are low and noisy; the on/off and mixed/single comparisons within one run are the point.\n\n" +
            table.ToMarkdown() + "\n## Aims\n\n" + aims + "\n## Sustained run\n\n" + sustained;
        Directory.CreateDirectory(run.Output);
        var stem = Path.Combine(run.Output, "inference-load");
        await File.WriteAllTextAsync(stem + ".md", markdown, ct);
        await File.WriteAllTextAsync(stem + ".csv", table.ToCsv(), ct);
        Console.WriteLine("\n" + table.ToMarkdown() + "\n" + aims + "\n" + sustained);
    }
}
