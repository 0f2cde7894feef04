using System.Security.Claims;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Authentication;
using Read.Api.Problems;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Receipts;

namespace Read.Api.Receipts;

internal static class ReceiptsApi
{
    /// <summary>What an alternative method would have cost for the same job, estimated (not measured).</summary>
    public sealed record CostEstimate(double CpuSeconds, long PeakRssBytes);

    public sealed record Estimates(CostEstimate Lora, CostEstimate FullFineTuning, string Basis, string Source);

    /// <summary>
    /// A finished job's bill, over every attempt it took (a job resumed after its worker died pays for both):
    /// cpu_seconds, the stage seconds and backbone_tokens_processed are sums over attempts, peak_rss_bytes and
    /// concurrent_jobs the largest, worker the last attempt's. backbone_tokens_processed counts the attempts that built the
    /// cache (0 when every attempt hit it). cpu_seconds and peak_rss_bytes are per worker process: with concurrent_jobs
    /// above 1 other jobs shared them. For a failed or cancelled job they cover the runs up to the end (0, and no worker,
    /// if it never started), last_stage says how far it got, and what only a finished training reports (cache, stage
    /// seconds, backbone tokens, estimates) is absent. A succeeded job whose measurements could not be written still has
    /// its receipt: the figures only they hold are absent (null).
    /// </summary>
    public sealed record ReceiptResponse(
        string JobId, string Object, string Status, string? LastStage, string Backbone, bool? CacheHit, long? CacheBytes,
        long? DatasetTokens, long? BackboneTokensProcessed,
        double? PrecomputeSeconds, double? TrainSeconds, double? EvaluateSeconds,
        double? CpuSeconds, long? PeakRssBytes, int? ConcurrentJobs, int? Attempts, string? Worker, DateTime? MeasuredAt,
        Estimates? Estimates);

    public static IEndpointRouteBuilder MapReceiptsApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1/fine-tuning/jobs").WithTags("Fine-tuning").RequireAuthorization(AuthPolicies.Tenant)
            .MapGet("/{id}/receipt", Get)
            .WithSummary("A finished job's cost receipt: tokens, stage seconds, CPU, peak RSS, cache, and LoRA / full fine-tuning estimates (failed and cancelled jobs: the work done until they stopped).");
        return app;
    }

    internal static async Task<Results<Ok<ReceiptResponse>, ProblemHttpResult>> Get(
        string id, ClaimsPrincipal user, ReadDbContext db, BackboneRegistry backbones, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == id && j.TenantId == tenant, ct);
        if (job is null)
            return ApiProblems.NotFound("fine-tuning job", id);
        var measurement = await db.JobMeasurements.AsNoTracking().FirstOrDefaultAsync(m => m.JobId == id, ct);
        if (job.Status is JobStatus.Failed or JobStatus.Cancelled)
            return TypedResults.Ok(new ReceiptResponse(
                job.Id, "fine_tuning.job.receipt", job.Status, job.Stage, job.BackboneId, null, null,
                measurement?.DatasetTokens ?? 0, null, null, null, null,
                measurement?.CpuSeconds ?? 0, measurement?.PeakRssBytes ?? 0, measurement?.ConcurrentJobs ?? 0, measurement?.Attempts, measurement?.Worker,
                measurement?.MeasuredAt ?? job.FinishedAt, null));
        if (job.Status != JobStatus.Succeeded || job.MetricsJson is null)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "receipt_not_available", "Conflict",
                $"Job '{id}' is {job.Status}; receipts are issued once a job has finished.");
        var metrics = JsonSerializer.Deserialize<FineTuneMetrics>(job.MetricsJson, JsonDefaults.SnakeCase)!;
        var architecture = backbones.Contains(job.BackboneId)
            ? BackboneArchitectures.ForModelType(backbones.Info(job.BackboneId).Architecture) ?? BackboneArchitecture.Bert
            : BackboneArchitecture.Bert;
        if (measurement is null)
        {
            // The worker could not write its measurements (the database refused them): the job's own metrics still stand.
            return TypedResults.Ok(new ReceiptResponse(
                job.Id, "fine_tuning.job.receipt", job.Status, job.Stage, job.BackboneId, metrics.CacheHit, metrics.CacheBytes,
                null, null, null, null, null, null, null, null, null, null, null, null));
        }

        var ratios = CostRatios.For(architecture);
        var estimates = new Estimates(
            new CostEstimate(measurement.CpuSeconds * ratios.LoraCpu, (long)(measurement.PeakRssBytes * ratios.LoraRss)),
            new CostEstimate(measurement.CpuSeconds * ratios.FullCpu, (long)(measurement.PeakRssBytes * ratios.FullRss)),
            "this job's cpu_seconds and peak_rss_bytes times the measured ratios; the ratios compare runs that included the backbone pass, so on a cache hit the estimates are low",
            ratios.Source);
        // Receipts written before attempts were added up (Attempts null) hold the last attempt only: the job's metrics then.
        var summed = measurement.Attempts is not null;
        return TypedResults.Ok(new ReceiptResponse(
            job.Id, "fine_tuning.job.receipt", job.Status, job.Stage, job.BackboneId, metrics.CacheHit, metrics.CacheBytes,
            measurement.DatasetTokens, summed ? measurement.BackboneTokens : metrics.CacheHit ? 0 : measurement.DatasetTokens,
            summed ? measurement.PrecomputeSeconds : metrics.PrecomputeSeconds,
            summed ? measurement.TrainSeconds : metrics.TrainSeconds,
            summed ? measurement.EvaluateSeconds : metrics.EvaluateSeconds,
            measurement.CpuSeconds, measurement.PeakRssBytes, measurement.ConcurrentJobs, measurement.Attempts, measurement.Worker, measurement.MeasuredAt,
            estimates));
    }
}
