using System.Security.Claims;
using System.Text.Json;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Idempotency;
using Read.Api.Paging;
using Read.Api.Problems;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.FineTuning;

internal static class FineTuningApi
{
    public sealed record EventList(IReadOnlyList<JobEventResponse> Data, bool HasMore);

    public sealed record CheckpointList(IReadOnlyList<CheckpointResponse> Data, bool HasMore);

    // OpenAI's metadata limits, so clients written for it fit, and a job row stays small.
    internal const int MaxMetadataKeys = 16;
    internal const int MaxMetadataKeyChars = 64;
    internal const int MaxMetadataValueChars = 512;

    public static IEndpointRouteBuilder MapFineTuningApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/fine-tuning/jobs").WithTags("Fine-tuning").RequireAuthorization(AuthPolicies.Tenant);
        group.MapPost("/", Create)
            .WithSummary("Create a READ fine-tuning job; it is queued for a worker.");
        group.MapGet("/", List).WithSummary("The calling tenant's jobs (sweep trials among them), newest first (limit, after).");
        group.MapGet("/{id}", Get).WithSummary("A job: status, stage, progress, metrics, error, adapter.");
        group.MapPost("/{id}/cancel", Cancel).WithSummary("Cancel a queued or running job; a running job stops within about a second.");
        group.MapGet("/{id}/checkpoints", Checkpoints).WithSummary("A job's kept checkpoints (the last epoch and the best), oldest first.");
        group.MapGet("/{id}/events", Events).WithSummary("A job's events in order; page with 'after' (an event id) and 'limit'.");
        return app;
    }

    internal static async Task<Results<Created<JobResponse>, ProblemHttpResult>> Create(
        CreateJobRequest request, ClaimsPrincipal user, ReadDbContext db, BackboneRegistry backbones,
        IBackgroundJobClient hangfire, IOptions<QuotaOptions> quotas, HttpContext http, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var (idempotencyKey, keyProblem) = IdempotencyKeys.Read(http.Request);
        if (keyProblem is not null)
            return keyProblem;
        var requestHash = idempotencyKey is null ? "" : IdempotencyKeys.Hash(JsonSerializer.SerializeToUtf8Bytes(request, JsonDefaults.SnakeCase));
        // A retry gets its first job back whatever the quota says now: that job is what fills the quota.
        if (idempotencyKey is not null && await ReplayAsync(db, tenant, idempotencyKey, requestHash, http, ct) is { } replay)
            return replay;
        if (await TenantQuotas.ConcurrentJobsExceededAsync(db, tenant, quotas.Value, ct) is { } limit)
            return ApiProblems.Problem(StatusCodes.Status429TooManyRequests, "concurrent_job_limit", "Too many requests",
                $"This tenant may have at most {limit} queued or running jobs; wait for one to finish or cancel one.");
        if (MetadataProblem(request.Metadata) is { } metadataProblem)
            return ApiProblems.BadRequest("invalid_metadata", metadataProblem);
        var task = request.Task ?? FineTuneTasks.Classification;
        if (await TrainingInputs.ProblemAsync(db, backbones, tenant, request.Backbone, task, request.TrainingFile, request.ValidationFile, ct) is { } inputProblem)
            return inputProblem;
        if (request.FromCheckpoint is not null)
        {
            var source = await db.JobCheckpoints.Where(c => c.Id == request.FromCheckpoint && c.TenantId == tenant)
                .Join(db.Jobs, c => c.JobId, j => j.Id, (c, j) => j.BackboneId).SingleOrDefaultAsync(ct);
            if (source is null)
                return ApiProblems.BadRequest("checkpoint_not_found", $"Checkpoint '{request.FromCheckpoint}' does not exist.");
            if (source != request.Backbone)
                return ApiProblems.BadRequest("checkpoint_backbone_mismatch",
                    $"Checkpoint '{request.FromCheckpoint}' was trained on backbone '{source}', not '{request.Backbone}'.");
        }

        var hyperparameters = request.Hyperparameters ?? new ReadHyperparameters();
        var backbone = backbones.Info(request.Backbone!);
        var errors = hyperparameters.Validate(backbone.MaxPositions, backbone.Layers, backbone.HiddenSize, backbone.Poolings);
        if (errors.Count > 0)
            return ApiProblems.BadRequest("invalid_hyperparameters", string.Join(" ", errors),
                new Dictionary<string, object?> { ["errors"] = errors });

        var job = new FineTuneJob
        {
            Id = "ftjob-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant,
            BackboneId = request.Backbone!,
            Task = task,
            TrainingFileId = request.TrainingFile!,
            ValidationFileId = request.ValidationFile,
            HyperparametersJson = JsonSerializer.Serialize(hyperparameters, JsonDefaults.SnakeCase),
            MetadataJson = request.Metadata is null ? null : JsonSerializer.Serialize(request.Metadata.ToDictionary(m => m.Key, m => m.Value.GetString())),
            FromCheckpointId = request.FromCheckpoint,
            Status = JobStatus.Queued,
            CreatedAt = DateTime.UtcNow,
        };
        db.Jobs.Add(job);
        db.JobEvents.Add(new JobEvent { JobId = job.Id, TenantId = tenant, CreatedAt = job.CreatedAt, Level = "info", Message = "Job created" });
        if (idempotencyKey is not null)
            IdempotencyKeys.Add(db, tenant, IdempotencyKeys.Jobs, idempotencyKey, requestHash, job.Id);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException e) when (idempotencyKey is not null && IdempotencyKeys.IsDuplicate(e))
        {
            // A concurrent retry under the same key won; ours rolled back whole (job, event and key), so answer with its job.
            db.ChangeTracker.Clear();
            return await ReplayAsync(db, tenant, idempotencyKey, requestHash, http, ct) ?? throw new InvalidOperationException("Idempotency key vanished.", e);
        }

        // Enqueue after the row is committed so a fast worker always finds it.
        var jobId = job.Id;
        job.HangfireJobId = hangfire.Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
        // Not the request's token: the job is enqueued already, and without its id saved the job sweep would enqueue it
        // a second time once it is a minute old (a client that hung up right now must not cause that).
        await db.SaveChangesAsync(CancellationToken.None);
        return TypedResults.Created($"/v1/fine-tuning/jobs/{job.Id}", JobResponse.From(job));
    }

    private static async Task<Results<Created<JobResponse>, ProblemHttpResult>?> ReplayAsync(
        ReadDbContext db, Guid tenant, string key, string requestHash, HttpContext http, CancellationToken ct)
    {
        var (jobId, problem) = await IdempotencyKeys.FindAsync(db, tenant, IdempotencyKeys.Jobs, key, requestHash, ct);
        if (problem is not null)
            return problem;
        if (jobId is null || await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == jobId && j.TenantId == tenant, ct) is not { } job)
            return null;
        IdempotencyKeys.MarkReplayed(http.Response);
        return TypedResults.Created($"/v1/fine-tuning/jobs/{job.Id}", JobResponse.From(job));
    }

    internal static string? MetadataProblem(Dictionary<string, JsonElement>? metadata)
    {
        if (metadata is null)
            return null;
        if (metadata.Count > MaxMetadataKeys)
            return $"metadata holds at most {MaxMetadataKeys} keys (got {metadata.Count}).";
        foreach (var (key, value) in metadata)
        {
            if (key.Length is 0 or > MaxMetadataKeyChars)
                return $"metadata keys must be 1 to {MaxMetadataKeyChars} characters (got one of {key.Length}).";
            if (value.ValueKind != JsonValueKind.String)
                return $"metadata values must be strings; '{key}' is a {value.ValueKind.ToString().ToLowerInvariant()}.";
            if (value.GetString()!.Length > MaxMetadataValueChars)
                return $"metadata values must be at most {MaxMetadataValueChars} characters; '{key}' has {value.GetString()!.Length}.";
        }

        return null;
    }

    internal static async Task<Results<Ok<Page<JobResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        var (page, problem) = await PageRequest.NewestFirstAsync(db.Jobs, user.GetTenantId(), limit, after, ct);
        if (problem is not null)
            return problem;
        return TypedResults.Ok(new Page<JobResponse>(page!.Object, page.Data.Select(JobResponse.From).ToList(), page.HasMore));
    }

    internal static async Task<Results<Ok<JobResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == id && j.TenantId == tenant, ct);
        return job is null ? ApiProblems.NotFound("fine-tuning job", id) : TypedResults.Ok(JobResponse.From(job));
    }

    internal static async Task<Results<Ok<JobResponse>, ProblemHttpResult>> Cancel(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var now = DateTime.UtcNow;
        // One conditional UPDATE: a job that finishes at the same moment stays finished.
        var cancelled = await db.Jobs
            .Where(j => j.Id == id && j.TenantId == tenant && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Cancelled)
                .SetProperty(j => j.CancelRequestedAt, now)
                .SetProperty(j => j.FinishedAt, now), ct);
        var job = await db.Jobs.AsNoTracking().SingleOrDefaultAsync(j => j.Id == id && j.TenantId == tenant, ct);
        if (job is null)
            return ApiProblems.NotFound("fine-tuning job", id);
        if (cancelled == 0 && job.Status != JobStatus.Cancelled)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "job_not_cancellable", "Conflict", $"Job '{id}' already {job.Status}.");
        if (cancelled > 0)
        {
            db.JobEvents.Add(new JobEvent { JobId = id, TenantId = tenant, CreatedAt = now, Level = "info", Message = "Cancellation requested" });
            await db.SaveChangesAsync(ct);
        }
        return TypedResults.Ok(JobResponse.From(job));
    }

    internal static async Task<Results<Ok<CheckpointList>, ProblemHttpResult>> Checkpoints(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        if (!await db.Jobs.AnyAsync(j => j.Id == id && j.TenantId == tenant, ct))
            return ApiProblems.NotFound("fine-tuning job", id);
        // Two rows at most (the last and the best): no paging needed.
        var checkpoints = await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == id && c.TenantId == tenant).OrderBy(c => c.Epoch).ToListAsync(ct);
        return TypedResults.Ok(new CheckpointList(checkpoints.Select(CheckpointResponse.From).ToList(), false));
    }

    internal static async Task<Results<Ok<EventList>, ProblemHttpResult>> Events(
        string id, ClaimsPrincipal user, ReadDbContext db, long? after, int? limit, CancellationToken ct)
    {
        var take = limit ?? 100;
        if (take is < 1 or > 1000)
            return ApiProblems.BadRequest("invalid_limit", "limit must be between 1 and 1000.");
        var tenant = user.GetTenantId();
        if (!await db.Jobs.AnyAsync(j => j.Id == id && j.TenantId == tenant, ct))
            return ApiProblems.NotFound("fine-tuning job", id);
        var from = after ?? 0;
        var events = await db.JobEvents.AsNoTracking()
            .Where(e => e.JobId == id && e.TenantId == tenant && e.Id > from)
            .OrderBy(e => e.Id).Take(take + 1).ToListAsync(ct);
        return TypedResults.Ok(new EventList(events.Take(take).Select(JobEventResponse.From).ToList(), events.Count > take));
    }
}
