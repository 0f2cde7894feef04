using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Read.Domain.Backbones;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class ReceiptTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Receipt_SucceededJobThenCacheHit_CountsBackboneTokensOnceAndMeasuresTheWorker()
    {
        using var client = await service.Api.CreateTenantClientAsync("receipts");
        var train = TestData.Sentiment(24, seed: 41);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(train));
        var body = new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 2, max_length = 32 } };
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;

        var first = (await client.CreateJobOkAsync(body)).GetProperty("id").GetString()!;
        await (await client.GetAsync($"/v1/fine-tuning/jobs/{first}/receipt")).AssertProblemAsync(HttpStatusCode.Conflict, "receipt_not_available");
        Assert.Equal("succeeded", (await client.WaitForJobAsync(first)).GetProperty("status").GetString());
        var miss = await ReceiptAsync(client, first);
        // The worker runs in this test process, so its CPU time is bounded by this process's.
        var cpuSpent = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;

        // Independent count: the backbone's own tokenizer, one example at a time, truncated at max_length 32.
        var backbone = service.Api.Service<BackboneRegistry>().Get("tiny-bert");
        long expectedTokens = 0;
        foreach (var example in train)
        {
            using var encoded = backbone.Encode([example.Text], [example.TextPair], 32);
            expectedTokens += encoded.AttentionMask.sum().item<long>();
        }
        Assert.Equal(expectedTokens, miss.GetProperty("dataset_tokens").GetInt64());
        Assert.False(miss.GetProperty("cache_hit").GetBoolean());
        Assert.Equal(expectedTokens, miss.GetProperty("backbone_tokens_processed").GetInt64());
        Assert.True(miss.GetProperty("cache_bytes").GetInt64() > 0);
        Assert.InRange(miss.GetProperty("cpu_seconds").GetDouble(), 1e-3, cpuSpent);
        Assert.InRange(miss.GetProperty("peak_rss_bytes").GetInt64(), 50L << 20, Process.GetCurrentProcess().PeakWorkingSet64);
        Assert.True(miss.GetProperty("precompute_seconds").GetDouble() > 0);

        // Same data, same backbone, same cache key: the second job's backbone did no work.
        var second = (await client.CreateJobOkAsync(body)).GetProperty("id").GetString()!;
        await client.WaitForJobAsync(second);
        var hit = await ReceiptAsync(client, second);
        Assert.True(hit.GetProperty("cache_hit").GetBoolean());
        Assert.Equal(0, hit.GetProperty("backbone_tokens_processed").GetInt64());
        Assert.Equal(expectedTokens, hit.GetProperty("dataset_tokens").GetInt64());

        using var other = await service.Api.CreateTenantClientAsync("receipts-other");
        await (await other.GetAsync($"/v1/fine-tuning/jobs/{first}/receipt")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Receipt_FailedAfterPrecompute_ShowsTheWorkDoneAndNoTrainingFigures()
    {
        using var client = await service.Api.CreateTenantClientAsync("receipts-failed");
        var train = TestData.Sentiment(16, seed: 43);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(train));
        var jobId = (await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1, max_length = 32 },
            metadata = new Dictionary<string, string> { ["fail_at_stage"] = "train" }, // StageProbe fails it once the cache is built
        })).GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);
        Assert.Equal("failed", job.GetProperty("status").GetString());

        var receipt = await ReceiptAsync(client, jobId);
        Assert.Equal("failed", receipt.GetProperty("status").GetString());
        Assert.Equal("train", receipt.GetProperty("last_stage").GetString());
        var backbone = service.Api.Service<BackboneRegistry>().Get("tiny-bert");
        long expectedTokens = 0;
        foreach (var example in train)
        {
            using var encoded = backbone.Encode([example.Text], [example.TextPair], 32);
            expectedTokens += encoded.AttentionMask.sum().item<long>();
        }
        Assert.Equal(expectedTokens, receipt.GetProperty("dataset_tokens").GetInt64());
        Assert.True(receipt.GetProperty("cpu_seconds").GetDouble() > 0);
        Assert.InRange(receipt.GetProperty("peak_rss_bytes").GetInt64(), 50L << 20, Process.GetCurrentProcess().PeakWorkingSet64);
        Assert.False(string.IsNullOrEmpty(receipt.GetProperty("worker").GetString()));
        foreach (var absent in new[] { "cache_hit", "precompute_seconds", "backbone_tokens_processed", "estimates" })
            Assert.False(receipt.TryGetProperty(absent, out _), absent);
    }

    [Fact]
    public async Task Receipt_JobCancelledWhileTraining_ShowsTheTrainStageAndTheWorkDoneUntilThen()
    {
        using var client = await service.Api.CreateTenantClientAsync("receipts-cancelled");
        var train = TestData.Sentiment(16, seed: 44);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(train));
        var jobId = (await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId,
            hyperparameters = new { epochs = 1000, early_stopping_patience = 0, max_length = 32 }, // trains until cancelled
        })).GetProperty("id").GetString()!;
        // Cancelled once it is training: the cache (so every dataset token) is done, the training is not.
        await WaitForAsync(client, $"/v1/fine-tuning/jobs/{jobId}", j => j.TryGetProperty("stage", out var s) && s.GetString() == "train");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/fine-tuning/jobs/{jobId}/cancel", null)).StatusCode);
        Assert.Equal("cancelled", (await client.WaitForJobAsync(jobId)).GetProperty("status").GetString());
        // The worker writes the measurement as it stops (within about a second of the cancel).
        var receipt = await WaitForAsync(client, $"/v1/fine-tuning/jobs/{jobId}/receipt", r => r.TryGetProperty("worker", out _));

        Assert.Equal("cancelled", receipt.GetProperty("status").GetString());
        Assert.Equal("train", receipt.GetProperty("last_stage").GetString());
        Assert.Equal(ExpectedTokens(train, 32), receipt.GetProperty("dataset_tokens").GetInt64());
        Assert.True(receipt.GetProperty("cpu_seconds").GetDouble() > 0);
        Assert.InRange(receipt.GetProperty("peak_rss_bytes").GetInt64(), 50L << 20, Process.GetCurrentProcess().PeakWorkingSet64);
        foreach (var absent in new[] { "cache_hit", "precompute_seconds", "backbone_tokens_processed", "estimates" })
            Assert.False(receipt.TryGetProperty(absent, out _), absent);
    }

    /// <summary>Independent count: the backbone's own tokenizer, one example at a time, truncated at <paramref name="maxLength"/>.</summary>
    private long ExpectedTokens(IReadOnlyList<Read.Domain.Datasets.LabeledExample> examples, int maxLength)
    {
        var backbone = service.Api.Service<BackboneRegistry>().Get("tiny-bert");
        long tokens = 0;
        foreach (var example in examples)
        {
            using var encoded = backbone.Encode([example.Text], [example.TextPair], maxLength);
            tokens += encoded.AttentionMask.sum().item<long>();
        }
        return tokens;
    }

    private static async Task<JsonElement> WaitForAsync(HttpClient client, string path, Func<JsonElement, bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            var response = await client.GetAsync(path);
            var json = await response.JsonAsync();
            if (response.StatusCode == HttpStatusCode.OK && done(json))
                return json;
            Assert.True(DateTime.UtcNow < deadline, $"{path} never reached the expected state: {json}");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task Receipt_Estimates_AreTheJobsCostTimesTheRatiosInCompareMd()
    {
        using var client = await service.Api.CreateTenantClientAsync("receipts-estimates");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 42)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;
        await client.WaitForJobAsync(jobId);
        var receipt = await ReceiptAsync(client, jobId);

        // Ratios recomputed here from the recorded benchmark table itself, so the receipt and the doc cannot drift apart.
        var table = CompareTable();
        var datasets = table.Select(r => r["dataset"]).Distinct().ToList();
        Assert.Equal(3, datasets.Count);
        double Ratio(string method, string column) => datasets.Average(d =>
            double.Parse(table.Single(r => r["dataset"] == d && r["method"] == method)[column])
            / double.Parse(table.Single(r => r["dataset"] == d && r["method"] == "read")[column]));

        var cpu = receipt.GetProperty("cpu_seconds").GetDouble();
        var rss = receipt.GetProperty("peak_rss_bytes").GetInt64();
        var estimates = receipt.GetProperty("estimates");
        Assert.Equal(cpu * Ratio("lora", "CPU s"), estimates.GetProperty("lora").GetProperty("cpu_seconds").GetDouble(), 1e-6);
        Assert.Equal(cpu * Ratio("full", "CPU s"), estimates.GetProperty("full_fine_tuning").GetProperty("cpu_seconds").GetDouble(), 1e-6);
        Assert.Equal(rss * Ratio("lora", "peak RSS MB"), estimates.GetProperty("lora").GetProperty("peak_rss_bytes").GetInt64(), 1.0);
        Assert.Equal(rss * Ratio("full", "peak RSS MB"), estimates.GetProperty("full_fine_tuning").GetProperty("peak_rss_bytes").GetInt64(), 1.0);
        Assert.StartsWith("docs/benchmarks/compare.md", estimates.GetProperty("source").GetString());
    }

    [Fact]
    public async Task Receipt_MeasurementsTheDatabaseRefused_SucceededJobStillHasOne_WithThoseFiguresAbsent()
    {
        using var client = await service.Api.CreateTenantClientAsync("receipts-unwritable");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 45)));
        Guid tenantId;
        await using (var db = service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext())
            tenantId = await db.Files.Where(f => f.Id == fileId).Select(f => f.TenantId).SingleAsync();
        // A real write failure: the database rejects every measurement row of this tenant.
        var trigger = "reject_measurements_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync($$"""
            CREATE FUNCTION {{trigger}}() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                IF NEW."TenantId" = '{{tenantId}}' THEN RAISE EXCEPTION 'measurements refused (test)'; END IF;
                RETURN NEW;
            END $body$;
            CREATE TRIGGER {{trigger}} BEFORE INSERT OR UPDATE ON job_measurements FOR EACH ROW EXECUTE FUNCTION {{trigger}}();
            """);
        try
        {
            var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1, max_length = 32 } }))
                .GetProperty("id").GetString()!;
            var job = await client.WaitForJobAsync(jobId);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());

            var receipt = await ReceiptAsync(client, jobId); // not 409 receipt_not_available, now or ever
            Assert.Equal("succeeded", receipt.GetProperty("status").GetString());
            Assert.Equal(job.GetProperty("metrics").GetProperty("cache_hit").GetBoolean(), receipt.GetProperty("cache_hit").GetBoolean());
            Assert.True(receipt.GetProperty("cache_bytes").GetInt64() > 0);
            foreach (var unmeasured in new[] { "cpu_seconds", "peak_rss_bytes", "dataset_tokens", "backbone_tokens_processed", "train_seconds", "worker", "estimates" })
                Assert.True(!receipt.TryGetProperty(unmeasured, out var value) || value.ValueKind == JsonValueKind.Null, $"{unmeasured}: {receipt}");
        }
        finally
        {
            await ExecuteAsync($"DROP TRIGGER {trigger} ON job_measurements; DROP FUNCTION {trigger}();");
        }
    }

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(service.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<JsonElement> ReceiptAsync(HttpClient client, string jobId)
    {
        var response = await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}/receipt");
        var json = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, json.ToString());
        return json;
    }

    /// <summary>The first table of docs/benchmarks/compare.md as rows keyed by column header.</summary>
    private static List<Dictionary<string, string>> CompareTable()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Read.sln")))
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("Read.sln not found above the test binaries.");
        var lines = File.ReadLines(Path.Combine(root, "docs", "benchmarks", "compare.md"))
            .SkipWhile(l => !l.StartsWith("| dataset | method |", StringComparison.Ordinal))
            .TakeWhile(l => l.StartsWith('|')).ToList();
        static string[] Cells(string line) => line.Trim('|').Split('|').Select(c => c.Trim()).ToArray();
        var header = Cells(lines[0]);
        return lines.Skip(2).Select(l => header.Zip(Cells(l)).ToDictionary(p => p.First, p => p.Second)).ToList();
    }
}
