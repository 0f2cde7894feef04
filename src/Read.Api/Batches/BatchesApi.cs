using System.Security.Claims;
using System.Text.Json;
using Hangfire;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.FineTuning;
using Read.Api.Inference;
using Read.Api.Paging;
using Read.Api.Problems;
using Read.Domain.Batches;
using Read.Domain.Persistence;

namespace Read.Api.Batches;

/// <summary>
/// Batch prediction jobs in the shape of OpenAI's Batch API: a JSONL file of predict requests (purpose "batch") answered
/// offline by a worker into an output and an error file (docs/decisions/017-batch-prediction.md).
/// </summary>
internal static class BatchesApi
{
    /// <summary>The only completion window accepted (OpenAI's); recorded, shown as expires_at, not enforced.</summary>
    public const string CompletionWindow = "24h";

    public static readonly TimeSpan CompletionWindowLength = TimeSpan.FromHours(24);

    public static IEndpointRouteBuilder MapBatchesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/batches").WithTags("Batches").RequireAuthorization(AuthPolicies.Tenant);
        group.MapPost("/", Create).WithSummary("Create a batch from an uploaded file of purpose 'batch'; a worker answers it (layer-streamed on a large backbone).");
        group.MapGet("/", List).WithSummary("The calling tenant's batches, newest first (limit, after).");
        group.MapGet("/{id}", Get).WithSummary("A batch: status, request counts, output and error files.");
        group.MapPost("/{id}/cancel", Cancel).WithSummary("Cancel a batch; it stops at its next chunk and publishes what it answered.");
        return app;
    }

    internal static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> Create(
        CreateBatchRequest request, ClaimsPrincipal user, ReadDbContext db, IBackgroundJobClient hangfire, IOptions<InferenceOptions> inference,
        IOptions<BatchOptions> batchOptions, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        if (FineTuningApi.MetadataProblem(request.Metadata) is { } metadataProblem)
            return ApiProblems.BadRequest("invalid_metadata", metadataProblem);
        if (request.CompletionWindow != CompletionWindow)
            return ApiProblems.BadRequest("invalid_completion_window", $"completion_window must be \"{CompletionWindow}\".");
        if (request.Endpoint is not { } endpoint || !BatchInputFile.Endpoints.Contains(endpoint))
            return ApiProblems.BadRequest("invalid_endpoint", $"endpoint must be one of {string.Join(", ", BatchInputFile.Endpoints)}.");
        if (string.IsNullOrWhiteSpace(request.InputFileId))
            return ApiProblems.BadRequest("missing_input_file", "'input_file_id' is required.");
        var file = await db.Files.AsNoTracking().Where(f => f.Id == request.InputFileId && f.TenantId == tenant).Select(f => new { f.Purpose }).SingleOrDefaultAsync(ct);
        if (file is null)
            return ApiProblems.BadRequest("file_not_found", $"File '{request.InputFileId}' does not exist.");
        if (file.Purpose != BatchFileStore.InputPurpose)
            return ApiProblems.BadRequest("invalid_file_purpose", $"File '{request.InputFileId}' has purpose '{file.Purpose}'; a batch needs a file uploaded with purpose 'batch'.");
        // Validated on upload; what is checked here is that every line targets the batch's endpoint.
        var content = await BatchFileStore.ReadAsync(db, tenant, request.InputFileId, ct);
        var parsed = BatchInputFile.Parse(content ?? [], batchOptions.Value.MaxRequests);
        if (!parsed.Succeeded)
            return ApiProblems.BadRequest(parsed.ErrorCode!, parsed.ErrorMessage!, parsed.ErrorLine is { } l ? new Dictionary<string, object?> { ["line"] = l } : null);
        if (parsed.Lines.FirstOrDefault(line => line.Endpoint != endpoint) is { } other)
            return ApiProblems.BadRequest("endpoint_mismatch", $"Line {other.Number}: url '{other.Url}' is not the batch's endpoint {endpoint}.",
                new Dictionary<string, object?> { ["line"] = other.Number });

        var batch = new PredictionBatch
        {
            Id = "batch_" + Guid.NewGuid().ToString("N"),
            TenantId = tenant,
            Endpoint = endpoint,
            InputFileId = request.InputFileId,
            CompletionWindow = CompletionWindow,
            Status = BatchStatus.Validating,
            CreatedAt = DateTime.UtcNow,
            TotalRequests = parsed.Lines.Count,
            MetadataJson = request.Metadata is null ? null : JsonSerializer.Serialize(request.Metadata.ToDictionary(m => m.Key, m => m.Value.GetString())),
            DefaultTopK = inference.Value.DefaultTopK,
            MaxTopK = inference.Value.MaxTopK,
        };
        db.Batches.Add(batch);
        await db.SaveChangesAsync(ct);
        // Enqueued after the commit, so a fast worker always finds the row.
        var id = batch.Id;
        batch.HangfireJobId = hangfire.Enqueue<BatchJobRunner>(BatchJobRunner.Queue, r => r.RunAsync(id, CancellationToken.None));
        await db.SaveChangesAsync(ct);
        return TypedResults.Ok(BatchResponse.From(batch));
    }

    internal static async Task<Results<Ok<Page<BatchResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        var (page, problem) = await PageRequest.NewestFirstAsync(db.Batches, user.GetTenantId(), limit, after, ct);
        if (problem is not null)
            return problem;
        return TypedResults.Ok(new Page<BatchResponse>(page!.Object, page.Data.Select(BatchResponse.From).ToList(), page.HasMore));
    }

    internal static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var batch = await db.Batches.AsNoTracking().SingleOrDefaultAsync(b => b.Id == id && b.TenantId == tenant, ct);
        return batch is null ? ApiProblems.NotFound("batch", id) : TypedResults.Ok(BatchResponse.From(batch));
    }

    internal static async Task<Results<Ok<BatchResponse>, ProblemHttpResult>> Cancel(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var now = DateTime.UtcNow;
        // One conditional UPDATE: a batch that finishes at the same moment stays finished. The run sees "cancelling"
        // at its next chunk and publishes what it answered as "cancelled".
        var cancelling = await db.Batches
            .Where(b => b.Id == id && b.TenantId == tenant && (b.Status == BatchStatus.Validating || b.Status == BatchStatus.InProgress))
            .ExecuteUpdateAsync(s => s.SetProperty(b => b.Status, BatchStatus.Cancelling).SetProperty(b => b.CancellingAt, now), ct);
        var batch = await db.Batches.AsNoTracking().SingleOrDefaultAsync(b => b.Id == id && b.TenantId == tenant, ct);
        if (batch is null)
            return ApiProblems.NotFound("batch", id);
        if (cancelling == 0 && batch.Status is not (BatchStatus.Cancelling or BatchStatus.Cancelled))
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "batch_not_cancellable", "Conflict", $"Batch '{id}' is already {batch.Status}.");
        return TypedResults.Ok(BatchResponse.From(batch));
    }
}
