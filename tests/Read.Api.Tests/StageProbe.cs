using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>
/// A worker-side stage listener for tests: records the backbone's forward-call count as each stage starts, and fails the
/// job on purpose at the stage its metadata names in "fail_at_stage", or, for sweep trials (whose metadata the sweep
/// writes), as precompute starts when its seed is <see cref="FailAtPrecomputeSeed"/>.
/// </summary>
internal sealed class StageProbe(IDbContextFactory<ReadDbContext> dbFactory, BackboneRegistry backbones) : IJobStageListener
{
    public const int FailAtPrecomputeSeed = 90210;

    public static readonly ConcurrentDictionary<(string JobId, FineTuneStage Stage), long> ForwardCallsAtStart = new();

    public void OnStageStarted(string jobId, FineTuneStage stage)
    {
        using var db = dbFactory.CreateDbContext();
        var job = db.Jobs.AsNoTracking().Single(j => j.Id == jobId);
        ForwardCallsAtStart[(jobId, stage)] = backbones.Get(job.BackboneId).ForwardCalls;
        if (job.MetadataJson is { } metadata && metadata.Contains($"\"fail_at_stage\":\"{FineTuneStages.Name(stage)}\"", StringComparison.Ordinal))
            throw new InvalidOperationException($"Injected failure at stage {FineTuneStages.Name(stage)}.");
        if (stage == FineTuneStage.Precompute && job.HyperparametersJson.Contains($"\"seed\":{FailAtPrecomputeSeed}", StringComparison.Ordinal))
            throw new InvalidOperationException($"Injected failure before precompute (seed {FailAtPrecomputeSeed}).");
    }
}
