using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Configuration;
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

    private FineTuneJobRunner Runner() => new(_db.Factory, _backbones,
        Options.Create(new ReadOptions { DataDirectory = _directory }), [], NullLogger<FineTuneJobRunner>.Instance);
}
