using System.Text.Json;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;

namespace Read.Domain.Sweeps;

/// <summary>
/// What a sweep does next, decided from its trials alone: which trials to start, and once all have finished, which one
/// is promoted. Pure, so the scheduling rules are the same wherever the sweep is moved on (API, worker, periodic pass).
/// </summary>
public static class SweepPlan
{
    /// <summary>Validation metrics a sweep may select by (FineTuneMetrics fields, snake_case).</summary>
    public static readonly IReadOnlyList<string> Metrics = ["validation_accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "validation_loss", "mse"];

    /// <summary>One trial as the plan sees it. <paramref name="Started"/>: handed to Hangfire by the sweep.</summary>
    public sealed record Trial(string JobId, int Index, string Status, string? Stage, bool Started, double? MetricValue, string? AdapterId);

    public sealed record Outcome(string Status, Trial? Best);

    public static bool LowerIsBetter(string metric) => metric is "validation_loss" or "mse";

    /// <summary>
    /// The trials to start now, in trial order: up to <paramref name="maxParallel"/> running at once once some trial has
    /// built the shared activation cache, but only one at a time until then. So the first trial builds the cache alone,
    /// and if it fails or is cancelled before the cache exists, the next trial takes the building over: still one
    /// backbone pass, never several trials computing the same cache side by side.
    /// </summary>
    public static IReadOnlyList<Trial> NextToStart(IReadOnlyList<Trial> trials, int maxParallel)
    {
        // A trial runs, or waits in Hangfire's queue (a job found running without the sweep's mark counts too).
        var inFlight = trials.Count(t => t.Status == JobStatus.Running || (t.Started && t.Status == JobStatus.Queued));
        var room = trials.Any(CacheBuilt) ? maxParallel - inFlight : inFlight == 0 ? 1 : 0;
        return trials.Where(t => !t.Started && t.Status == JobStatus.Queued).Take(Math.Max(room, 0)).ToList();
    }

    /// <summary>The cache exists once a trial got past precompute (training reads it), whatever became of that trial.</summary>
    private static bool CacheBuilt(Trial trial) =>
        trial.Status == JobStatus.Succeeded
        || trial.Stage == FineTuneStages.Name(FineTuneStage.Train)
        || trial.Stage == FineTuneStages.Name(FineTuneStage.Evaluate)
        || trial.Stage == FineTuneStages.Name(FineTuneStage.Publish);

    /// <summary>
    /// The sweep's result once every trial has finished, else null. The best is the succeeded trial with the highest
    /// <paramref name="metric"/> (lowest for a loss), ties to the earlier trial; a cancelled sweep promotes nothing.
    /// </summary>
    public static Outcome? Finish(IReadOnlyList<Trial> trials, string metric, bool cancelRequested)
    {
        if (!trials.All(t => JobStatus.IsTerminal(t.Status)))
            return null;
        if (cancelRequested || trials.All(t => t.Status == JobStatus.Cancelled))
            return new Outcome(SweepStatus.Cancelled, null);
        var scored = trials.Where(t => t.Status == JobStatus.Succeeded && t.MetricValue is not null).ToList();
        if (scored.Count == 0)
            return new Outcome(SweepStatus.Failed, null);
        var best = (LowerIsBetter(metric) ? scored.OrderBy(t => t.MetricValue) : scored.OrderByDescending(t => t.MetricValue)).ThenBy(t => t.Index).First();
        return new Outcome(SweepStatus.Succeeded, best);
    }

    /// <summary>The value of <paramref name="metric"/> in a job's metrics JSON, or null (no validation data, not finished).</summary>
    public static double? MetricValue(string? metricsJson, string metric)
    {
        if (metricsJson is null)
            return null;
        using var doc = JsonDocument.Parse(metricsJson);
        return doc.RootElement.TryGetProperty(metric, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
    }
}
