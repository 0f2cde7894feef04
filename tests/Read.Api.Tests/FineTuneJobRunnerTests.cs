using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;

namespace Read.Api.Tests;

/// <summary>The job runner on a real Postgres database, called the way Hangfire calls it, without a hosted service.</summary>
public sealed class FineTuneJobRunnerTests : IAsyncLifetime
{
    private const string BrokenBackboneId = "tiny-nan";
    private readonly string _directory = Directory.CreateTempSubdirectory("read-runner-").FullName;
    private JobsDatabase _db = null!;
    private BackboneRegistry _backbones = null!;

    private string CacheDirectory => new ReadOptions { DataDirectory = _directory }.ActivationCacheDirectory;

    public async Task InitializeAsync()
    {
        _db = await JobsDatabase.CreateAsync();
        // A tiny backbone whose embedding LayerNorm scale is NaN: NaN flows through every layer.
        var checkpoint = Path.Combine(_directory, "tiny-nan");
        TinyBertCheckpoint.Write(checkpoint, BertConfig.Tiny(vocabSize: 1), seed: 5);
        var weights = Path.Combine(checkpoint, HuggingFaceCheckpoint.WeightsFile);
        var tensors = SafeTensorsFile.Read(await File.ReadAllBytesAsync(weights));
        var scale = tensors["embeddings.LayerNorm.weight"];
        tensors["embeddings.LayerNorm.weight"] = scale with { Data = scale.Data.Select(_ => float.NaN).ToArray() };
        await File.WriteAllBytesAsync(weights, SafeTensorsFile.Write(tensors));
        _backbones = new BackboneRegistry(new BackboneOptions
        {
            DataDirectory = _directory, Checkpoints = { [BrokenBackboneId] = checkpoint }, ImportBundledBackbones = false,
        });
    }

    public async Task DisposeAsync()
    {
        _backbones.Dispose();
        await _db.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Run_BackboneWithNaNHiddenStates_FailsWithNonFiniteActivations_AndCachesAndPublishesNothing()
    {
        var train = TestData.Sentiment(16, seed: 41);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        var jobId = await _db.InsertJobAsync(JobStatus.Queued, backboneId: BrokenBackboneId, trainingFileId: fileId,
            hyperparametersJson: "{\"epochs\":1,\"max_length\":32}");

        await Runner().RunAsync(jobId, CancellationToken.None);

        var job = await _db.JobAsync(jobId);
        Assert.Equal(JobStatus.Failed, job.Status);
        Assert.Equal(JobErrorCodes.NonFiniteActivations, job.ErrorCode);
        Assert.Null(job.LeaseOwner); // a finished job holds no lease
        Assert.Null(job.LeaseExpiresAt);
        await using var db = await _db.Factory.CreateDbContextAsync();
        Assert.False(await db.Adapters.AnyAsync(a => a.JobId == jobId));
        Assert.Empty(Directory.Exists(CacheDirectory) ? Directory.GetFiles(CacheDirectory) : []);
    }

    [Fact]
    public async Task Run_ThatSucceeds_PublishesAndGivesTheLeaseUp()
    {
        var train = TestData.Sentiment(16, seed: 42);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        var jobId = await _db.InsertJobAsync(JobStatus.Queued, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
            hyperparametersJson: "{\"epochs\":1,\"max_length\":32}");

        await Runner().RunAsync(jobId, CancellationToken.None);

        var job = await _db.JobAsync(jobId);
        Assert.True(job.Status == JobStatus.Succeeded, job.ErrorMessage);
        Assert.Null(job.LeaseOwner);
        Assert.Null(job.LeaseExpiresAt);
    }

    [Fact]
    public async Task Run_DuplicateDeliveryOfAJobRunningUnderALiveLease_ExitsWithoutTouchingIt()
    {
        var jobId = await _db.InsertJobAsync(JobStatus.Running, leaseOwner: "the-live-run", leaseExpiresAt: DateTime.UtcNow.AddMinutes(2));

        await Runner().RunAsync(jobId, CancellationToken.None);

        var job = await _db.JobAsync(jobId);
        Assert.Equal(JobStatus.Running, job.Status);
        Assert.Equal("the-live-run", job.LeaseOwner);
        Assert.Equal(0, job.Attempts);
        await using var db = await _db.Factory.CreateDbContextAsync();
        Assert.False(await db.JobEvents.AnyAsync(e => e.JobId == jobId));
    }

    [Fact]
    public async Task TwoDeliveriesAtOnce_OfOneQueuedJob_ExactlyOneClaimsIt()
    {
        for (var round = 0; round < 10; round++)
        {
            // No training file: the run that wins the claim fails at once, which is all this needs of it.
            var jobId = await _db.InsertJobAsync(JobStatus.Queued, trainingFileId: "file-missing");
            using var start = new Barrier(2);
            var deliveries = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                Runner().RunAsync(jobId, CancellationToken.None).GetAwaiter().GetResult();
            }, TaskCreationOptions.LongRunning));
            await Task.WhenAll(deliveries);

            var job = await _db.JobAsync(jobId);
            Assert.Equal((JobStatus.Failed, JobErrorCodes.InvalidTrainingData, 1), (job.Status, job.ErrorCode, job.Attempts));
            await using var db = await _db.Factory.CreateDbContextAsync();
            Assert.Equal(1, await db.JobEvents.CountAsync(e => e.JobId == jobId && e.Level == "error"));
        }
    }

    [Fact]
    public async Task TwoDeliveriesAtOnce_OfAJobWhoseLeaseLapsed_OneTakesItOverAndNamesTheDeadWorkerOnce()
    {
        for (var round = 0; round < 5; round++)
        {
            var jobId = await _db.InsertJobAsync(JobStatus.Running, trainingFileId: "file-missing",
                leaseOwner: "dead-worker", leaseExpiresAt: DateTime.UtcNow.AddMinutes(-1));
            using var start = new Barrier(2);
            var deliveries = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                Runner().RunAsync(jobId, CancellationToken.None).GetAwaiter().GetResult();
            }, TaskCreationOptions.LongRunning));
            await Task.WhenAll(deliveries);

            await using var db = await _db.Factory.CreateDbContextAsync();
            var takeovers = await db.JobEvents.Where(e => e.JobId == jobId && e.Message.StartsWith("Job taken over from worker")).ToListAsync();
            Assert.Contains("dead-worker", Assert.Single(takeovers).Message);
            Assert.Equal(1, (await _db.JobAsync(jobId)).Attempts);
        }
    }

    [Fact]
    public async Task Resume_FromACheckpointThatNoLongerMatches_IsSetAsideWithAReason_AndTrainingStartsOverOnTheCachedActivations()
    {
        var train = TestData.Sentiment(16, seed: 43);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        const string hyperparameters = "{\"epochs\":2,\"max_length\":32,\"early_stopping_patience\":0";
        // A finished run writes the cache and a checkpoint; its state is what an older version (other hyperparameter
        // fields, hence another fingerprint) would have left for the jobs below.
        var earlier = await _db.InsertJobAsync(JobStatus.Queued, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
            hyperparametersJson: hyperparameters + ",\"learning_rate\":0.02}");
        await Runner().RunAsync(earlier, CancellationToken.None);
        byte[] otherRun;
        await using (var db = await _db.Factory.CreateDbContextAsync())
            otherRun = await db.JobCheckpoints.Where(c => c.JobId == earlier).OrderByDescending(c => c.Epoch).Select(c => c.State).FirstAsync();
        using var unreadable = new MemoryStream();
        using (var writer = new BinaryWriter(unreadable))
        {
            writer.Write("READCKPT");
            writer.Write(99); // a format this version does not know
        }

        foreach (var (state, reason) in new[] { (otherRun, "other hyperparameters"), (unreadable.ToArray(), "cannot be read") })
        {
            // The job's worker died after epoch 1; the version that resumes it cannot use that checkpoint.
            var jobId = await _db.InsertJobAsync(JobStatus.Running, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
                hyperparametersJson: hyperparameters + ",\"learning_rate\":0.01}", leaseOwner: "dead-worker", leaseExpiresAt: DateTime.UtcNow.AddMinutes(-1));
            var stale = "ftckpt-" + Guid.NewGuid().ToString("N");
            await using (var db = await _db.Factory.CreateDbContextAsync())
            {
                db.JobCheckpoints.Add(new JobCheckpoint
                {
                    Id = stale, JobId = jobId, TenantId = _db.TenantId, Epoch = 1, MetricsJson = "{}", IsBest = true, State = state, CreatedAt = DateTime.UtcNow,
                });
                await db.SaveChangesAsync();
            }

            await Runner().RunAsync(jobId, CancellationToken.None);

            var job = await _db.JobAsync(jobId);
            Assert.True(job.Status == JobStatus.Succeeded, $"{reason}: {job.ErrorCode} {job.ErrorMessage}");
            Assert.True(job.CacheHit, reason); // the earlier job's activations, not a second backbone pass
            await using var read = await _db.Factory.CreateDbContextAsync();
            var messages = await read.JobEvents.Where(e => e.JobId == jobId).OrderBy(e => e.Id).Select(e => e.Message).ToListAsync();
            var setAside = Assert.Single(messages, m => m.StartsWith($"Checkpoint {stale} (epoch 1) set aside: ", StringComparison.Ordinal));
            Assert.Contains(reason, setAside);
            Assert.DoesNotContain(messages, m => m.StartsWith("Resumed by ", StringComparison.Ordinal));
            // Both epochs trained afresh; the set-aside checkpoint is replaced by this run's.
            Assert.Equal(["Epoch 1", "Epoch 2"], messages.Where(m => m.StartsWith("Epoch ", StringComparison.Ordinal)).Select(m => m[..m.IndexOf(':')]));
            Assert.Equal([2], await read.JobCheckpoints.Where(c => c.JobId == jobId).Select(c => c.Epoch).ToListAsync());
        }
    }

    [Fact]
    public async Task Resume_UnreadableCheckpoint_OfAJobWhoseSourceCheckpointIsGone_FailsCheckpointUnavailable_NotTrainedFromScratch()
    {
        var train = TestData.Sentiment(16, seed: 47);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        // Created from a checkpoint since deleted; its worker died after epoch 1, leaving a checkpoint this version cannot read.
        var jobId = await _db.InsertJobAsync(JobStatus.Running, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
            hyperparametersJson: "{\"epochs\":2,\"max_length\":32}", leaseOwner: "dead-worker", leaseExpiresAt: DateTime.UtcNow.AddMinutes(-1));
        using var unreadable = new MemoryStream();
        using (var writer = new BinaryWriter(unreadable))
        {
            writer.Write("READCKPT");
            writer.Write(99);
        }

        await using (var db = await _db.Factory.CreateDbContextAsync())
        {
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.FromCheckpointId, "ftckpt-deleted"));
            db.JobCheckpoints.Add(new JobCheckpoint
            {
                Id = "ftckpt-" + Guid.NewGuid().ToString("N"), JobId = jobId, TenantId = _db.TenantId, Epoch = 1, MetricsJson = "{}", IsBest = true,
                State = unreadable.ToArray(), CreatedAt = DateTime.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        await Runner().RunAsync(jobId, CancellationToken.None);

        var job = await _db.JobAsync(jobId);
        Assert.True((job.Status, job.ErrorCode) == (JobStatus.Failed, JobErrorCodes.CheckpointUnavailable), $"{job.Status} {job.ErrorCode} {job.ErrorMessage}");
    }

    [Fact]
    public async Task Claim_ClearsTheEstimatedFinishAnEarlierAttemptLeft_UntilThisAttemptsFirstEpoch()
    {
        var train = TestData.Sentiment(16, seed: 44);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        var jobId = await _db.InsertJobAsync(JobStatus.Running, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
            hyperparametersJson: "{\"epochs\":2,\"max_length\":32}", leaseOwner: "dead-worker", leaseExpiresAt: DateTime.UtcNow.AddMinutes(-1));
        var stale = DateTime.UtcNow.AddHours(1); // the dead attempt's pace
        await using (var db = await _db.Factory.CreateDbContextAsync())
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.EstimatedFinishAt, stale));
        using var held = new BlockingStageListener(FineTuneStage.Train);

        var run = Task.Run(() => Runner(held).RunAsync(jobId, CancellationToken.None));
        await held.Entered.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Null((await _db.JobAsync(jobId)).EstimatedFinishAt);
        held.Release();
        await run;

        var job = await _db.JobAsync(jobId);
        Assert.True(job.Status == JobStatus.Succeeded, job.ErrorMessage);
        Assert.InRange(job.EstimatedFinishAt!.Value, job.StartedAt!.Value, job.FinishedAt!.Value);
    }

    private FineTuneJobRunner Runner(params IJobStageListener[] listeners) => new(_db.Factory, _backbones,
        Options.Create(new ReadOptions { DataDirectory = _directory }), listeners, NullLogger<FineTuneJobRunner>.Instance);
}
