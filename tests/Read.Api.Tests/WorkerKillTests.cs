using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Read.Domain.Backbones;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Receipts;
using Read.Worker;

namespace Read.Api.Tests;

/// <summary>
/// kill -9 for real: a Read.Worker process is killed mid-training; another worker (in-process) notices the lapsed lease,
/// resumes the job from its last checkpoint on the activation cache the dead worker built (a shared cache directory, as
/// in docker-compose) and ends with the metrics of a run that was never interrupted; the receipt bills both attempts.
/// Its own database, so no other worker can take the job.
/// </summary>
public sealed class WorkerKillTests
{
    private static readonly object Hyperparameters = new
    {
        epochs = 16, batch_size = 8, learning_rate = 0.01, r = 16, max_length = 32, seed = 7, early_stopping_patience = 0,
    };

    [Fact]
    public async Task KilledWorker_JobResumesOnAnotherFromItsLastCheckpoint_AndMatchesAnUninterruptedRun()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var root = Directory.CreateTempSubdirectory("read-kill-").FullName;
        try
        {
            await using var api = ReadApplication.Start(Path.Combine(root, "api"), database.ConnectionString);
            using var client = await api.CreateTenantClientAsync("kill");
            var trainId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(64, seed: 21)));
            var validationId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 22)));
            var body = new { backbone = "tiny-bert", training_file = trainId, validation_file = validationId, hyperparameters = Hyperparameters };
            var factory = api.Service<IDbContextFactory<ReadDbContext>>();

            var sharedCache = Path.Combine(root, "shared-cache");
            using var first = StartWorkerProcess(database.ConnectionString, Path.Combine(root, "worker-1"), sharedCache, out var firstOutput);
            var jobId = (await client.CreateJobOkAsync(body)).GetProperty("id").GetString()!;
            var killedAfter = await WaitForCheckpointAsync(factory, jobId, minEpoch: 2, first, firstOutput);
            first.Kill(entireProcessTree: true); // SIGKILL: no shutdown, no lease release
            await first.WaitForExitAsync();
            int lastCheckpoint;
            string deadOwner;
            JobMeasurement dead;
            await using (var db = await factory.CreateDbContextAsync())
            {
                lastCheckpoint = await db.JobCheckpoints.Where(c => c.JobId == jobId).MaxAsync(c => c.Epoch);
                var row = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
                Assert.Equal(JobStatus.Running, row.Status);
                deadOwner = row.LeaseOwner!;
                // What the dead attempt had written of its cost before the kill: it built the cache.
                dead = await db.JobMeasurements.AsNoTracking().SingleAsync(m => m.JobId == jobId);
            }
            Assert.True(lastCheckpoint >= killedAfter && lastCheckpoint < 16, $"killed after epoch {lastCheckpoint}");
            Assert.Contains($":{first.Id}:", deadOwner);
            Assert.Equal(1, dead.Attempts);
            Assert.True(dead.BackboneTokens > 0 && dead.BackboneTokens == dead.DatasetTokens, $"dead attempt: {dead.BackboneTokens} of {dead.DatasetTokens} tokens");

            using var second = await WorkerHost.BuildAsync(WorkerArgs(database.ConnectionString, Path.Combine(root, "worker-2"), sharedCache));
            var backbone = second.Services.GetRequiredService<BackboneRegistry>().Get("tiny-bert");
            var forwardCallsBefore = backbone.ForwardCalls;
            await second.StartAsync();
            try
            {
                var resumed = await client.WaitForJobAsync(jobId);
                Assert.True(resumed.GetProperty("status").GetString() == "succeeded", resumed.ToString());
                Assert.Equal(2, resumed.GetProperty("attempts").GetInt32());
                // The resumed attempt read the dead worker's cache: no backbone pass on this worker.
                Assert.True(resumed.GetProperty("metrics").GetProperty("cache_hit").GetBoolean(), resumed.ToString());
                Assert.Equal(forwardCallsBefore, backbone.ForwardCalls);
                // The receipt bills both attempts: the backbone tokens once (the dead attempt's pass), CPU and train time of both.
                var receipt = await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}/receipt")).JsonAsync();
                Assert.Equal(2, receipt.GetProperty("attempts").GetInt32());
                Assert.True(receipt.GetProperty("cache_hit").GetBoolean());
                Assert.Equal(dead.DatasetTokens, receipt.GetProperty("dataset_tokens").GetInt64());
                Assert.Equal(dead.BackboneTokens, receipt.GetProperty("backbone_tokens_processed").GetInt64());
                Assert.True(receipt.GetProperty("cpu_seconds").GetDouble() > dead.CpuSeconds, $"{receipt} vs dead attempt's {dead.CpuSeconds} CPU s");
                Assert.True(receipt.GetProperty("train_seconds").GetDouble() > dead.TrainSeconds, $"{receipt} vs dead attempt's {dead.TrainSeconds} train s");
                Assert.True(receipt.GetProperty("precompute_seconds").GetDouble() >= dead.PrecomputeSeconds, receipt.ToString());
                Assert.True(receipt.GetProperty("peak_rss_bytes").GetInt64() >= dead.PeakRssBytes, receipt.ToString());

                var events = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/events?limit=1000"))
                    .GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!).ToList();
                Assert.Contains(events, m => m.StartsWith($"Worker {deadOwner} lost (lease expired", StringComparison.Ordinal));
                var resumeEvent = events.FindIndex(m => m.StartsWith("Resumed by ", StringComparison.Ordinal) && m.Contains($"from epoch {lastCheckpoint} "));
                Assert.True(resumeEvent >= 0, string.Join("\n", events));
                // The second worker trains exactly the epochs after the checkpoint; no epoch is reported twice.
                var epochs = events.Select(EpochOf).OfType<int>().ToList();
                Assert.Equal(epochs.Distinct(), epochs);
                Assert.Equal(Enumerable.Range(lastCheckpoint + 1, 16 - lastCheckpoint), events.Skip(resumeEvent).Select(EpochOf).OfType<int>());

                var checkpoints = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/checkpoints")).GetProperty("data");
                Assert.Equal(16, checkpoints.EnumerateArray().Max(c => c.GetProperty("epoch").GetInt32()));

                // The same job never interrupted, on the surviving worker.
                var uninterrupted = await client.WaitForJobAsync((await client.CreateJobOkAsync(body)).GetProperty("id").GetString()!);
                Assert.True(uninterrupted.GetProperty("status").GetString() == "succeeded", uninterrupted.ToString());
                var expected = uninterrupted.GetProperty("metrics");
                var actual = resumed.GetProperty("metrics");
                foreach (var name in new[] { "final_train_loss", "validation_loss", "validation_accuracy", "macro_f1" })
                    Assert.True(Math.Abs(expected.GetProperty(name).GetDouble() - actual.GetProperty(name).GetDouble()) <= 1e-6,
                        $"{name}: uninterrupted {expected.GetProperty(name)}, resumed {actual.GetProperty(name)}");
                Assert.Equal(expected.GetProperty("epochs_run").GetInt32(), actual.GetProperty("epochs_run").GetInt32());
            }
            finally
            {
                await second.StopAsync();
            }
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    private static int? EpochOf(string message) =>
        message.StartsWith("Epoch ", StringComparison.Ordinal) && int.TryParse(message.AsSpan(6, message.IndexOf(':') - 6), out var epoch) ? epoch : null;

    // Short lease and sweep, so a dead worker is noticed in seconds rather than the production 30 s. Separate data
    // directories (two machines), one cache volume both mount.
    private static string[] WorkerArgs(string connectionString, string dataDirectory, string cacheDirectory) =>
    [
        $"--ConnectionStrings:Postgres={connectionString}", $"--Read:DataDirectory={dataDirectory}",
        $"--Read:Training:CacheDirectory={cacheDirectory}",
        "--Read:JobLeaseDuration=00:00:03", "--Read:JobSweepInterval=00:00:01",
    ];

    private static Process StartWorkerProcess(string connectionString, string dataDirectory, string cacheDirectory, out ConcurrentQueue<string> output)
    {
        var workerDll = Path.Combine(AppContext.BaseDirectory, "Read.Worker.dll");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(workerDll);
        foreach (var arg in WorkerArgs(connectionString, dataDirectory, cacheDirectory))
            start.ArgumentList.Add(arg);
        var process = Process.Start(start)!;
        var lines = new ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        output = lines;
        return process;
    }

    private static async Task<int> WaitForCheckpointAsync(
        IDbContextFactory<ReadDbContext> factory, string jobId, int minEpoch, Process worker, ConcurrentQueue<string> output)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (true)
        {
            await using (var db = await factory.CreateDbContextAsync())
            {
                var epoch = await db.JobCheckpoints.Where(c => c.JobId == jobId).Select(c => (int?)c.Epoch).MaxAsync();
                // And the receipt has the backbone pass (written as the cache opened, beside training).
                if (epoch >= minEpoch && await db.JobMeasurements.AnyAsync(m => m.JobId == jobId && m.BackboneTokens > 0))
                    return epoch.Value;
            }
            if (worker.HasExited || DateTime.UtcNow > deadline)
                Assert.Fail($"No checkpoint {minEpoch} (worker exited: {worker.HasExited}):\n{string.Join("\n", output.TakeLast(40))}");
            await Task.Delay(10);
        }
    }
}
