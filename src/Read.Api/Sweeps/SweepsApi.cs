using System.Globalization;
using System.Security.Claims;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Authentication;
using Read.Api.FineTuning;
using Read.Api.Problems;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Sweeps;
using Read.Domain.Tenants;
using Read.ServiceDefaults;

namespace Read.Api.Sweeps;

internal static class SweepsApi
{
    public const int MaxTrials = 16;

    /// <summary>Body of POST /v1/fine-tuning/sweeps: a base set plus either a grid (every combination) or a list of overrides.</summary>
    public sealed record CreateSweepRequest(
        string? Backbone, string? Task, string? TrainingFile, string? ValidationFile,
        JsonObject? Hyperparameters, Dictionary<string, JsonArray?>? Grid, List<JsonObject?>? Trials,
        string? Metric, int? MaxParallel);

    public sealed record TrialResponse(string JobId, int Index, string Status, JsonObject Overrides, double? MetricValue, bool? CacheHit);

    /// <summary>How much backbone work the shared cache saved: trials that hit it ran no backbone forward at all.</summary>
    public sealed record CacheSavings(int BackbonePasses, int CacheHits, long BackboneTokensProcessed, long BackboneTokensSaved, double PrecomputeSecondsSavedEstimate);

    /// <summary>
    /// A sweep. Once every trial has finished, <c>status</c> is the recorded outcome and a succeeded sweep names its
    /// promoted trial (<c>best_job_id</c>, <c>best_metric_value</c>) and that trial's adapter (<c>promoted_adapter_id</c>).
    /// </summary>
    public sealed record SweepResponse(
        string Id, string Object, string Status, string Backbone, string TrainingFile, string? ValidationFile, string Metric, int MaxParallel,
        IReadOnlyList<TrialResponse> Trials, string? BestJobId, double? BestMetricValue, string? PromotedAdapterId, CacheSavings Cache,
        DateTime CreatedAt, DateTime? FinishedAt);

    // Fields that make up the activation-cache key: every trial must agree on them to share one cache.
    private static readonly Func<ReadHyperparameters, object>[] CacheFields =
        [h => h.MaxLength, h => h.Pooling, h => string.Join(",", h.Layers ?? []), h => h.CacheDtype, h => h.InitialState];

    private static readonly JsonSerializerOptions Strict = new(JsonDefaults.SnakeCase)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    public static IEndpointRouteBuilder MapSweepsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/fine-tuning/sweeps").WithTags("Fine-tuning").RequireAuthorization(AuthPolicies.Tenant);
        group.MapPost("/", Create)
            .WithSummary("Sweep hyperparameters on one backbone and file: each trial is a job, all share one activation cache (one backbone pass).");
        group.MapPost("/{id}/cancel", Cancel).WithSummary("Cancel every unfinished trial of a sweep (finished trials keep their results).");
        group.MapGet("/{id}", Get).WithSummary("A sweep: its trials, the promoted best by the chosen metric once all have finished, and the backbone work the cache saved.");
        return app;
    }

    internal static async Task<Results<Created<SweepResponse>, ProblemHttpResult>> Create(
        CreateSweepRequest request, ClaimsPrincipal user, ReadDbContext db, BackboneRegistry backbones, IBackgroundJobClient hangfire,
        Microsoft.Extensions.Options.IOptions<QuotaOptions> quotas, ILogger<SweepScheduler> logger, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var task = request.Task ?? FineTuneTasks.Classification;
        // The checks a job makes (files of the right purpose, numeric labels for regression): every trial is a job.
        if (await TrainingInputs.ProblemAsync(db, backbones, tenant, request.Backbone, task, request.TrainingFile, request.ValidationFile, ct) is { } inputProblem)
            return inputProblem;
        var metric = request.Metric ?? (task == FineTuneTasks.Regression ? "validation_loss" : "validation_accuracy");
        if (!SweepPlan.Metrics.Contains(metric))
            return ApiProblems.BadRequest("invalid_sweep_metric", $"metric must be one of {string.Join(", ", SweepPlan.Metrics)}.");
        var maxParallel = request.MaxParallel ?? 2;
        if (maxParallel is < 1 or > MaxTrials)
            return ApiProblems.BadRequest("invalid_max_parallel", $"max_parallel must be between 1 and {MaxTrials}.");

        if ((request.Grid is null) == (request.Trials is null))
            return ApiProblems.BadRequest("invalid_sweep", "Give exactly one of 'grid' (name → list of values) or 'trials' (list of overrides).");
        if (request.Grid?.FirstOrDefault(g => g.Value is null) is { Key: { } unlisted })
            return ApiProblems.BadRequest("invalid_sweep", $"grid '{unlisted}' must be a list of values, not null.");
        if (request.Trials?.IndexOf(null) is >= 0 and var missing)
            return ApiProblems.BadRequest("invalid_sweep", $"trials[{missing}] must be an object of overrides, not null.");
        var overrides = request.Grid is not null
            ? Combinations(request.Grid.ToDictionary(g => g.Key, g => g.Value!))
            : request.Trials!.Select(t => t!).ToList();
        if (overrides.Count is < 1 or > MaxTrials)
            return ApiProblems.BadRequest("invalid_sweep", $"A sweep has 1 to {MaxTrials} trials (this one has {overrides.Count}).");

        var info = backbones.Info(request.Backbone!);
        var trials = new List<(JsonObject Overrides, ReadHyperparameters Hyperparameters)>();
        foreach (var (trialOverrides, index) in overrides.Select((o, i) => (o, i)))
        {
            var merged = (JsonObject)(request.Hyperparameters?.DeepClone() ?? new JsonObject());
            foreach (var (name, value) in trialOverrides)
                merged[name] = value?.DeepClone();
            ReadHyperparameters hp;
            try
            {
                hp = merged.Deserialize<ReadHyperparameters>(Strict) ?? new ReadHyperparameters();
            }
            catch (JsonException e)
            {
                return ApiProblems.BadRequest("invalid_hyperparameters", $"Trial {index}: {e.Message}");
            }
            var errors = hp.Validate(info.MaxPositions, info.Layers, info.HiddenSize, info.Poolings);
            if (errors.Count > 0)
                return ApiProblems.BadRequest("invalid_hyperparameters", $"Trial {index}: {string.Join(" ", errors)}");
            trials.Add((trialOverrides, hp));
        }
        if (CacheFields.Any(field => trials.Select(t => field(t.Hyperparameters)).Distinct().Count() > 1))
            return ApiProblems.BadRequest("sweep_needs_one_cache",
                "Trials must agree on max_length, pooling, layers, cache_dtype and initial_state: they share one activation cache.");

        // Every trial is a queued job from the start, so the sweep needs room for all of them under the tenant's
        // concurrent-job quota; refused like a job (429 concurrent_job_limit) otherwise.
        if (await TenantQuotas.ConcurrentJobsExceededAsync(db, tenant, quotas.Value, ct, trials.Count) is { } limit)
            return ApiProblems.Problem(StatusCodes.Status429TooManyRequests, "concurrent_job_limit", "Too many requests",
                $"This tenant may have at most {limit} queued or running jobs and this sweep adds {trials.Count}; wait for some to finish, cancel some, or sweep fewer trials.");

        var now = DateTime.UtcNow;
        var sweep = new Sweep
        {
            Id = "sweep-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant, BackboneId = request.Backbone!, TrainingFileId = request.TrainingFile!, ValidationFileId = request.ValidationFile,
            Metric = metric, MaxParallel = maxParallel, TrialJobIds = [], CreatedAt = now,
        };
        var jobs = trials.Select((t, i) => new FineTuneJob
        {
            Id = "ftjob-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant, BackboneId = request.Backbone!, Task = task,
            TrainingFileId = request.TrainingFile!, ValidationFileId = request.ValidationFile,
            HyperparametersJson = JsonSerializer.Serialize(t.Hyperparameters, JsonDefaults.SnakeCase),
            MetadataJson = JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["sweep_id"] = sweep.Id, ["sweep_trial"] = i.ToString(CultureInfo.InvariantCulture),
                ["sweep_overrides"] = t.Overrides.ToJsonString(),
            }),
            Status = JobStatus.Queued,
            HangfireJobId = SweepScheduler.NotStarted, // the sweep starts it when its plan has room; job recovery leaves it
            CreatedAt = now.AddTicks(i * 10), // trial order is creation order in job listings
        }).ToList();
        sweep.TrialJobIds.AddRange(jobs.Select(j => j.Id));
        db.Sweeps.Add(sweep);
        db.Jobs.AddRange(jobs);
        foreach (var job in jobs)
            db.JobEvents.Add(new JobEvent { JobId = job.Id, TenantId = tenant, CreatedAt = now, Level = "info", Message = $"Job created as trial of {sweep.Id}" });
        await db.SaveChangesAsync(ct);

        // Trial 0 starts now and builds the cache; each finished trial starts the next ones (SweepScheduler). Not the
        // request's token: a client hanging up must not leave the sweep unstarted (the job sweep would start it, late).
        await SweepScheduler.AdvanceAsync(db, hangfire, sweep.Id, logger, CancellationToken.None);
        return TypedResults.Created($"/v1/fine-tuning/sweeps/{sweep.Id}", await DescribeAsync(db, sweep.Id, ct));
    }

    /// <summary>One conditional UPDATE over the trials, as a job's cancel: a trial finishing at that moment stays finished.</summary>
    internal static async Task<Results<Ok<SweepResponse>, ProblemHttpResult>> Cancel(
        string id, ClaimsPrincipal user, ReadDbContext db, IBackgroundJobClient hangfire, ILogger<SweepScheduler> logger, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var sweep = await db.Sweeps.AsNoTracking().FirstOrDefaultAsync(s => s.Id == id && s.TenantId == tenant, ct);
        if (sweep is null)
            return ApiProblems.NotFound("sweep", id);
        var ids = sweep.TrialJobIds;
        var now = DateTime.UtcNow;
        // First, so that however the trials end, the sweep ends cancelled and promotes nothing.
        await db.Sweeps.Where(s => s.Id == id && s.CancelRequestedAt == null).ExecuteUpdateAsync(s => s.SetProperty(w => w.CancelRequestedAt, now), ct);
        var open = await db.Jobs.Where(j => ids.Contains(j.Id) && j.TenantId == tenant && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
            .Select(j => j.Id).ToListAsync(ct);
        var cancelled = await db.Jobs
            .Where(j => open.Contains(j.Id) && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Cancelled)
                .SetProperty(j => j.CancelRequestedAt, now)
                .SetProperty(j => j.FinishedAt, now), ct);
        if (cancelled > 0)
        {
            // Trials already in Hangfire's queue stay there; the runner skips a job that is no longer queued.
            foreach (var jobId in open)
                db.JobEvents.Add(new JobEvent { JobId = jobId, TenantId = tenant, CreatedAt = now, Level = "info", Message = $"Cancellation requested with {sweep.Id}" });
            await db.SaveChangesAsync(ct);
        }
        // Every trial may be finished now: record the sweep as cancelled at once rather than at its last trial's end.
        await SweepScheduler.AdvanceAsync(db, hangfire, id, logger, CancellationToken.None);
        return TypedResults.Ok(await DescribeAsync(db, id, ct));
    }

    internal static async Task<Results<Ok<SweepResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        if (!await db.Sweeps.AnyAsync(s => s.Id == id && s.TenantId == tenant, ct))
            return ApiProblems.NotFound("sweep", id);
        return TypedResults.Ok(await DescribeAsync(db, id, ct));
    }

    private static async Task<SweepResponse> DescribeAsync(ReadDbContext db, string sweepId, CancellationToken ct)
    {
        var sweep = await db.Sweeps.AsNoTracking().SingleAsync(s => s.Id == sweepId, ct);
        var ids = sweep.TrialJobIds;
        var jobs = (await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).ToListAsync(ct)).ToDictionary(j => j.Id);
        var measurements = (await db.JobMeasurements.AsNoTracking().Where(m => ids.Contains(m.JobId)).ToListAsync(ct)).ToDictionary(m => m.JobId);
        var trials = ids.Select((jobId, index) =>
        {
            var job = jobs[jobId];
            var overrides = JsonNode.Parse(JsonSerializer.Deserialize<Dictionary<string, string>>(job.MetadataJson!)!["sweep_overrides"])!.AsObject();
            return new TrialResponse(jobId, index, job.Status, overrides, SweepPlan.MetricValue(job.MetricsJson, sweep.Metric), job.CacheHit);
        }).ToList();

        var misses = trials.Where(t => t.CacheHit == false).ToList();
        var hits = trials.Where(t => t.CacheHit == true).ToList();
        long Tokens(IEnumerable<TrialResponse> ts) => ts.Sum(t => measurements.TryGetValue(t.JobId, out var m) ? m.DatasetTokens : 0);
        var precompute = misses.Select(t => PrecomputeSeconds(jobs[t.JobId])).DefaultIfEmpty(0).Average();
        var savings = new CacheSavings(misses.Count, hits.Count, Tokens(misses), Tokens(hits), precompute * hits.Count);

        // The outcome is recorded once (SweepScheduler); until then the sweep reads queued or running from its trials.
        var status = sweep.Status != SweepStatus.Running ? sweep.Status
            : trials.Any(t => t.Status == JobStatus.Running) ? "running" : "queued";
        return new SweepResponse(sweep.Id, "fine_tuning.sweep", status, sweep.BackboneId, sweep.TrainingFileId, sweep.ValidationFileId,
            sweep.Metric, sweep.MaxParallel, trials, sweep.BestJobId, sweep.BestMetricValue, sweep.PromotedAdapterId, savings,
            sweep.CreatedAt, sweep.FinishedAt);
    }

    private static double PrecomputeSeconds(FineTuneJob job) =>
        job.MetricsJson is null ? 0 : JsonSerializer.Deserialize<FineTuneMetrics>(job.MetricsJson, JsonDefaults.SnakeCase)!.PrecomputeSeconds;

    /// <summary>Every combination of the grid's values, in name order then value order.</summary>
    internal static List<JsonObject> Combinations(Dictionary<string, JsonArray> grid)
    {
        var result = new List<JsonObject> { new() };
        foreach (var (name, values) in grid.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            result = result.SelectMany(partial => values.Select(value =>
            {
                var next = (JsonObject)partial.DeepClone();
                next[name] = value?.DeepClone();
                return next;
            })).ToList();
            if (result.Count > MaxTrials)
                break; // refused by the caller; no need to build the rest
        }
        return result;
    }
}
