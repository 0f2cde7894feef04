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
    /// A finished job's bill. backbone_tokens_processed is 0 on a cache hit (the backbone did not run). cpu_seconds and
    /// peak_rss_bytes are per worker process: with concurrent_jobs above 1 other jobs shared them. For a failed or
    /// cancelled job they cover the run up to its end (0, and no worker, if it never started), last_stage says how far it
    /// got, and what only a finished training reports (cache, stage seconds, backbone tokens, estimates) is absent.
    /// </summary>
    public sealed record ReceiptResponse(
        string JobId, string Object, string Status, string? LastStage, string Backbone, bool? CacheHit, long? CacheBytes,
        long DatasetTokens, long? BackboneTokensProcessed,
        double? PrecomputeSeconds, double? TrainSeconds, double? EvaluateSeconds,
        double CpuSeconds, long PeakRssBytes, int ConcurrentJobs, string? Worker, DateTime? MeasuredAt,
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
                measurement?.CpuSeconds ?? 0, measurement?.PeakRssBytes ?? 0, measurement?.ConcurrentJobs ?? 0, measurement?.Worker,
                measurement?.MeasuredAt ?? job.FinishedAt, null));
        if (job.Status != JobStatus.Succeeded || job.MetricsJson is null || measurement is null)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "receipt_not_available", "Conflict",
                $"Job '{id}' is {job.Status}; receipts are issued once a job has finished.");
        var metrics = JsonSerializer.Deserialize<FineTuneMetrics>(job.MetricsJson, JsonDefaults.SnakeCase)!;
        var architecture = backbones.Contains(job.BackboneId)
            ? BackboneArchitectures.ForModelType(backbones.Info(job.BackboneId).Architecture) ?? BackboneArchitecture.Bert
            : BackboneArchitecture.Bert;
        var ratios = CostRatios.For(architecture);
        var estimates = new Estimates(
            new CostEstimate(measurement.CpuSeconds * ratios.LoraCpu, (long)(measurement.PeakRssBytes * ratios.LoraRss)),
            new CostEstimate(measurement.CpuSeconds * ratios.FullCpu, (long)(measurement.PeakRssBytes * ratios.FullRss)),
            "this job's cpu_seconds and peak_rss_bytes times the measured ratios; the ratios compare runs that included the backbone pass, so on a cache hit the estimates are low",
            ratios.Source);
        return TypedResults.Ok(new ReceiptResponse(
            job.Id, "fine_tuning.job.receipt", job.Status, job.Stage, job.BackboneId, metrics.CacheHit, metrics.CacheBytes,
            measurement.DatasetTokens, metrics.CacheHit ? 0 : measurement.DatasetTokens,
            metrics.PrecomputeSeconds, metrics.TrainSeconds, metrics.EvaluateSeconds,
            measurement.CpuSeconds, measurement.PeakRssBytes, measurement.ConcurrentJobs, measurement.Worker, measurement.MeasuredAt,
            estimates));
    }
}
