using Read.Domain.Jobs;
using Read.Domain.Sweeps;

namespace Read.Domain.Tests.Sweeps;

public sealed class SweepPlanTests
{
    private static SweepPlan.Trial Trial(int index, string status = JobStatus.Queued, string? stage = null, bool started = false, double? metric = null) =>
        new($"ftjob-{index}", index, status, stage, started, metric, metric is null ? null : $"adapter-{index}");

    private static int[] Next(int maxParallel, params SweepPlan.Trial[] trials) => SweepPlan.NextToStart(trials, maxParallel).Select(t => t.Index).ToArray();

    [Fact]
    public void NextToStart_NoCacheYet_OneTrialAtATime()
    {
        Assert.Equal([0], Next(3, Trial(0), Trial(1), Trial(2)));
        // The cache builder is queued in Hangfire, or computing the cache: nobody else starts.
        Assert.Empty(Next(3, Trial(0, started: true), Trial(1), Trial(2)));
        Assert.Empty(Next(3, Trial(0, JobStatus.Running, "precompute", started: true), Trial(1), Trial(2)));
    }

    [Fact]
    public void NextToStart_CacheBuilderDiedBeforeTheCacheExisted_TheNextTrialBuildsItAlone()
    {
        Assert.Equal([1], Next(3, Trial(0, JobStatus.Failed, "precompute", started: true), Trial(1), Trial(2), Trial(3)));
        Assert.Equal([1], Next(3, Trial(0, JobStatus.Cancelled, null, started: true), Trial(1), Trial(2), Trial(3)));
    }

    [Fact]
    public void NextToStart_CacheBuilt_UpToMaxParallelInFlight()
    {
        Assert.Equal([1, 2], Next(2, Trial(0, JobStatus.Succeeded, "publish", true, 0.5), Trial(1), Trial(2), Trial(3)));
        // Past precompute is enough, whatever became of the trial; one slot is taken by a queued trial.
        Assert.Equal([2], Next(2, Trial(0, JobStatus.Failed, "train", true), Trial(1, started: true), Trial(2), Trial(3)));
        // A trial found running though the sweep never marked it started (re-run by recovery) holds a slot too.
        Assert.Empty(Next(2, Trial(0, JobStatus.Running, "train", true), Trial(1, JobStatus.Running), Trial(2)));
        // Cancelled before it started: skipped, never started.
        Assert.Equal([2], Next(1, Trial(0, JobStatus.Succeeded, "publish", true, 0.5), Trial(1, JobStatus.Cancelled), Trial(2)));
    }

    [Fact]
    public void Finish_BestByMetric_HigherOrLowerIsBetterTiesToTheEarlierTrial()
    {
        var trials = new[] { Trial(0, JobStatus.Succeeded, metric: 0.25), Trial(1, JobStatus.Succeeded, metric: 0.75), Trial(2, JobStatus.Succeeded, metric: 0.75), Trial(3, JobStatus.Failed) };
        var accuracy = SweepPlan.Finish(trials, "validation_accuracy", cancelRequested: false)!;
        Assert.Equal((SweepStatus.Succeeded, 1, "adapter-1"), (accuracy.Status, accuracy.Best!.Index, accuracy.Best.AdapterId));
        Assert.Equal(0, SweepPlan.Finish(trials, "validation_loss", cancelRequested: false)!.Best!.Index);
        Assert.Equal(0, SweepPlan.Finish(trials, "mse", cancelRequested: false)!.Best!.Index);
    }

    [Fact]
    public void Finish_UnfinishedCancelledOrUnscored_NoPromotion()
    {
        Assert.Null(SweepPlan.Finish([Trial(0, JobStatus.Succeeded, metric: 1), Trial(1, JobStatus.Running)], "f1", false));
        var cancelled = SweepPlan.Finish([Trial(0, JobStatus.Succeeded, metric: 1), Trial(1, JobStatus.Cancelled)], "f1", cancelRequested: true)!;
        Assert.Equal((SweepStatus.Cancelled, null), (cancelled.Status, cancelled.Best));
        Assert.Equal(SweepStatus.Cancelled, SweepPlan.Finish([Trial(0, JobStatus.Cancelled), Trial(1, JobStatus.Cancelled)], "f1", false)!.Status);
        // Succeeded without the metric (no validation data) is not scored.
        var failed = SweepPlan.Finish([Trial(0, JobStatus.Succeeded), Trial(1, JobStatus.Failed)], "f1", false)!;
        Assert.Equal((SweepStatus.Failed, null), (failed.Status, failed.Best));
    }

    [Fact]
    public void MetricValue_ReadsTheNamedNumberOrNull()
    {
        Assert.Equal(0.125, SweepPlan.MetricValue("""{"validation_loss": 0.125, "f1": null}""", "validation_loss"));
        Assert.Null(SweepPlan.MetricValue("""{"validation_loss": 0.125, "f1": null}""", "f1"));
        Assert.Null(SweepPlan.MetricValue(null, "f1"));
    }
}
