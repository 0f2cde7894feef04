using System.Data.Common;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>
/// A database hiccup during training costs a retry, not the job: the trainer's progress calls never touch the database,
/// and what they posted arrives — the latest progress, and every event in order — once the database answers again.
/// </summary>
public sealed class JobProgressRecorderTests : IAsyncLifetime
{
    private JobsDatabase _db = null!;

    public async Task InitializeAsync() => _db = await JobsDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task DatabaseFailingTheFirstWrites_TrainerNeverSeesIt_AndLatestProgressAndAllEventsArrive()
    {
        var jobId = await _db.InsertJobAsync(JobStatus.Running, leaseOwner: "run-1", leaseExpiresAt: DateTime.UtcNow.AddMinutes(2));
        var job = await _db.JobAsync(jobId);
        var failures = new FailFirstWrites(count: 4);
        var logger = new WarningLog();
        var recorder = new JobProgressRecorder(FactoryWith(failures), job, [], logger);

        // What the training loop does; none of it may throw or wait for the failing database.
        recorder.StageStarted(FineTuneStage.Precompute);
        recorder.Progress(FineTuneStage.Precompute, 1.0);
        recorder.StageStarted(FineTuneStage.Train);
        for (var epoch = 1; epoch <= 5; epoch++)
        {
            recorder.Progress(FineTuneStage.Train, epoch / 5.0);
            recorder.EpochCompleted(new EpochMetrics(epoch, 1.0 / epoch, null, 0.01));
        }
        await recorder.DisposeAsync(); // the final flush, as the runner does before the terminal write

        Assert.Equal(4, failures.Thrown);
        Assert.True(logger.Warnings >= 4, $"{logger.Warnings} warnings for 4 failed writes");
        var row = await _db.JobAsync(jobId);
        Assert.Equal("train", row.Stage);
        Assert.Equal(1.0, row.Progress);
        await using var db = await _db.Factory.CreateDbContextAsync();
        var messages = await db.JobEvents.Where(e => e.JobId == jobId).OrderBy(e => e.Id).Select(e => e.Message).ToListAsync();
        Assert.Equal(
            new[] { "Stage precompute started", "Stage train started" }.Concat(Enumerable.Range(1, 5).Select(e => $"Epoch {e}: "))
                .ToList(),
            messages.Select(m => m.StartsWith("Epoch", StringComparison.Ordinal) ? m[..(m.IndexOf(':') + 2)] : m).ToList());
    }

    [Fact]
    public async Task RunThatLostItsLease_DoesNotOverwriteTheNewRunsProgress()
    {
        var jobId = await _db.InsertJobAsync(JobStatus.Running, leaseOwner: "new-run", leaseExpiresAt: DateTime.UtcNow.AddMinutes(2));
        var stale = await _db.JobAsync(jobId);
        stale.LeaseOwner = "old-run";

        await using (var recorder = new JobProgressRecorder(_db.Factory, stale, [], new WarningLog()))
            recorder.StageStarted(FineTuneStage.Evaluate);

        Assert.Null((await _db.JobAsync(jobId)).Stage);
    }

    private IDbContextFactory<ReadDbContext> FactoryWith(IInterceptor interceptor) => new Factory(
        new DbContextOptionsBuilder<PostgresReadDbContext>().UseNpgsql(_db.ConnectionString).AddInterceptors(interceptor).Options);

    private sealed class Factory(DbContextOptions<PostgresReadDbContext> options) : IDbContextFactory<ReadDbContext>
    {
        public ReadDbContext CreateDbContext() => new PostgresReadDbContext(options);
    }

    /// <summary>The database refuses the first <c>count</c> writes, as during a failover.</summary>
    private sealed class FailFirstWrites(int count) : DbCommandInterceptor
    {
        private int _thrown;

        public int Thrown => Volatile.Read(ref _thrown);

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(
            DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken ct = default)
        {
            MaybeFail();
            return base.NonQueryExecutingAsync(command, eventData, result, ct);
        }

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(
            DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken ct = default)
        {
            MaybeFail();
            return base.ReaderExecutingAsync(command, eventData, result, ct);
        }

        private void MaybeFail()
        {
            if (Interlocked.Increment(ref _thrown) <= count)
                throw new NpgsqlException("injected: the database is unavailable");
            Interlocked.Decrement(ref _thrown);
        }
    }

    private sealed class WarningLog : ILogger
    {
        private int _warnings;

        public int Warnings => Volatile.Read(ref _warnings);

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel == LogLevel.Warning)
                Interlocked.Increment(ref _warnings);
        }
    }
}
