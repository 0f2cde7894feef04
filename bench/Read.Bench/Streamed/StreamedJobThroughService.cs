using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Read.Bench.Load;
using Read.Bench.Measurement;
using Read.Domain.Datasets;

namespace Read.Bench.Streamed;

/// <summary>
/// `streamed-precompute --through-worker`: the same READ job as the in-process run, but submitted over HTTP to the
/// scaled-out service — the API and one Read.Worker as child processes on a Postgres database of their own — so the
/// job runs exactly as a user's would (Hangfire queue, lease, progress events, checkpoints, publish). The worker's
/// VmHWM is the job's peak memory (the worker does nothing else); per-layer figures come from the job's events.
/// </summary>
internal static class StreamedJobThroughService
{
    public static async Task<StreamedPrecomputeCommand.Summary> RunAsync(
        string checkpoint, string shapeName, long parameters, long diskBytes, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample> validation,
        object hyperparameters, long budget, string postgres, string scratch, CancellationToken ct)
    {
        var database = "read_bench_streamed_" + Guid.NewGuid().ToString("N")[..12];
        var connection = ReplaceDatabase(postgres, database); // EF creates it on the first migration
        var settings = new Dictionary<string, string>
        {
            ["ConnectionStrings:Postgres"] = connection,
            ["Read:Backbones:Checkpoints:streamed"] = checkpoint,
            ["Read:Backbones:GenerateTinyBackbone"] = "false",
            ["Read:Backbones:ImportBundledBackbones"] = "false",
            ["Read:Training:MemoryBudgetBytes"] = budget.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Read:RateLimits:Enabled"] = "false",
            ["Read:WorkerCount"] = "1",
        };
        var root = AppContext.BaseDirectory;
        var configuration = new DirectoryInfo(root).Parent!.Name; // bench/Read.Bench/bin/<Configuration>/<tfm>/
        var repository = FindRepository(root);
        var apiDll = Path.Combine(repository, "src/Read.Api/bin", configuration, "net10.0/Read.Api.dll");
        var workerDll = Path.Combine(repository, "src/Read.Worker/bin", configuration, "net10.0/Read.Worker.dll");
        var data = Path.Combine(scratch, "service-" + database);

        Console.WriteLine($"  starting the API and a worker on database {database}");
        await using var api = await ApiProcess.StartAsync(apiDll, Path.Combine(data, "api"), settings, ct);
        var (worker, workerLog) = ApiProcess.Launch(workerDll, Path.Combine(data, "worker"), "worker.log", settings);
        try
        {
            using var admin = api.Client(ApiProcess.AdminKey, 1);
            admin.Timeout = TimeSpan.FromMinutes(10); // the API hashes the checkpoint's shards the first time it sees the backbone
            var tenant = await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name = "streamed-bench" }, ct)).EnsureSuccessStatusCode()
                .Content.ReadFromJsonAsync<JsonElement>(ct);
            using var client = api.Client(tenant.GetProperty("api_key").GetString(), 1);
            client.Timeout = TimeSpan.FromMinutes(10);
            var trainFile = await UploadAsync(client, train, "train.jsonl", "fine-tune", ct);
            var validationFile = await UploadAsync(client, validation, "validation.jsonl", "validation", ct);
            var clock = Stopwatch.StartNew();
            var created = await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new
            {
                backbone = "streamed", training_file = trainFile, validation_file = validationFile, hyperparameters,
            }, ct)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>(ct);
            var jobId = created.GetProperty("id").GetString()!;
            Console.WriteLine($"  job {jobId} created; polling (worker pid {worker.Id})");

            JsonElement job;
            var maxRss = 0.0;
            var lastStage = "";
            while (true)
            {
                if (worker.HasExited)
                    throw new InvalidOperationException($"The worker exited with {worker.ExitCode}; see {Path.Combine(data, "worker", "worker.log")}.");
                maxRss = Math.Max(maxRss, ProcessStats.RssMb(worker.Id) is var rss && double.IsNaN(rss) ? 0 : rss);
                job = await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}", ct);
                var status = job.GetProperty("status").GetString();
                var stage = job.TryGetProperty("stage", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "";
                if (stage != lastStage)
                {
                    Console.WriteLine($"  {clock.Elapsed.TotalSeconds,6:F0} s: {status} / {stage}, worker RSS {maxRss:F0} MB so far");
                    lastStage = stage;
                }

                if (status is "succeeded" or "failed" or "cancelled")
                    break;
                await Task.Delay(500, ct);
            }

            var wallSeconds = clock.Elapsed.TotalSeconds;
            var peak = ProcessStats.PeakRssMb(worker.Id);
            if (job.GetProperty("status").GetString() != "succeeded")
                throw new InvalidOperationException($"The job did not succeed: {job}");
            var events = await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/events?limit=1000", ct);
            var layers = events.GetProperty("data").EnumerateArray()
                .Where(e => e.GetProperty("message").GetString()!.StartsWith("Layer-streamed precompute: ", StringComparison.Ordinal))
                .Select(e => e.GetProperty("data"))
                .Select(d => new StreamedPrecomputeCommand.Layer(d.GetProperty("step").GetInt32(), d.GetProperty("load_seconds").GetDouble(),
                    d.GetProperty("run_seconds").GetDouble(), d.GetProperty("weight_bytes_read").GetInt64() / 1e6))
                .OrderBy(l => l.Step).ToList();
            var receipt = await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/receipt", ct);
            var metrics = job.GetProperty("metrics");
            Console.WriteLine($"  job {jobId} succeeded in {wallSeconds:F0} s; worker VmHWM {peak:F0} MB (sampled max VmRSS {maxRss:F0} MB); receipt peak {receipt.GetProperty("peak_rss_bytes").GetInt64() / 1e6:F0} MB");
            return new StreamedPrecomputeCommand.Summary(shapeName, parameters, diskBytes / 1e9, parameters * 4 / 1e9, budget / (double)(1L << 30),
                Resident: layers.Count == 0, RegisterSeconds: double.NaN, receipt.GetProperty("dataset_tokens").GetInt64(),
                metrics.GetProperty("precompute_seconds").GetDouble(), metrics.GetProperty("train_seconds").GetDouble(), peak,
                metrics.TryGetProperty("validation_accuracy", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetDouble() : null, layers)
            {
                Mode = "through the worker (API + Read.Worker + Postgres, job over HTTP)",
                WallSeconds = wallSeconds,
            };
        }
        finally
        {
            if (!worker.HasExited)
            {
                worker.Kill(entireProcessTree: true);
                await worker.WaitForExitAsync(CancellationToken.None);
            }

            worker.Dispose();
            lock (workerLog)
                workerLog.Dispose();
        }
    }

    private static async Task<string> UploadAsync(HttpClient client, IReadOnlyList<LabeledExample> examples, string name, string purpose, CancellationToken ct)
    {
        var jsonl = new StringBuilder();
        foreach (var e in examples)
            jsonl.AppendLine(JsonSerializer.Serialize(new { text = e.Text, label = e.Label }));
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(jsonl.ToString()));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", name);
        form.Add(new StringContent(purpose), "purpose");
        var response = await client.PostAsync("/v1/files", form, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"Upload of {name} failed: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
    }

    private static string ReplaceDatabase(string connectionString, string database)
    {
        var parts = connectionString.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Where(p => !p.TrimStart().StartsWith("Database=", StringComparison.OrdinalIgnoreCase)).ToList();
        parts.Add("Database=" + database);
        return string.Join(';', parts);
    }

    private static string FindRepository(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Read.sln")))
                return d.FullName;
        throw new DirectoryNotFoundException($"No Read.sln above {start}.");
    }
}
