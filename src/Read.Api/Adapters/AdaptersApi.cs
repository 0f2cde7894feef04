using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Inference;
using Read.Api.Paging;
using Read.Api.Problems;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Api.Adapters;

internal static class AdaptersApi
{
    public static IEndpointRouteBuilder MapAdaptersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/adapters").WithTags("Adapters").RequireAuthorization(AuthPolicies.Tenant);
        group.MapGet("/", List).WithSummary("The calling tenant's adapters, newest first (limit, after).");
        group.MapGet("/{id}", Get).WithSummary("Adapter metadata: backbone, config, metrics, size, sha256.");
        group.MapGet("/{id}/download", Download).WithSummary("The adapter artifact (zip: adapter_config.json, adapter_model.safetensors, metrics.json).");
        group.MapPost("/{id}/predict", Predict).AdmittedAsPredict().WithSummary("Labels and probabilities for a batch of inputs (backbone + side network).");
        group.MapDelete("/{id}", Delete).WithSummary("Delete an adapter.");
        return app;
    }

    // Metadata queries never pull the artifact bytes.
    private static IQueryable<AdapterRecord> WithoutArtifact(IQueryable<AdapterRecord> query) => query.Select(a => new AdapterRecord
    {
        Id = a.Id, TenantId = a.TenantId, JobId = a.JobId, BackboneId = a.BackboneId, BackboneWeightsHash = a.BackboneWeightsHash,
        ConfigJson = a.ConfigJson, MetricsJson = a.MetricsJson, Artifact = Array.Empty<byte>(), SizeBytes = a.SizeBytes,
        Sha256 = a.Sha256, CreatedAt = a.CreatedAt,
    });

    internal static async Task<Results<Ok<Page<AdapterResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        var (page, problem) = await PageRequest.NewestFirstAsync(WithoutArtifact(db.Adapters), user.GetTenantId(), limit, after, ct);
        if (problem is not null)
            return problem;
        return TypedResults.Ok(new Page<AdapterResponse>(page!.Object, page.Data.Select(AdapterResponse.From).ToList(), page.HasMore));
    }

    internal static async Task<Results<Ok<AdapterResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var adapter = await WithoutArtifact(db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == tenant)).SingleOrDefaultAsync(ct);
        return adapter is null ? ApiProblems.NotFound("adapter", id) : TypedResults.Ok(AdapterResponse.From(adapter));
    }

    internal static async Task<Results<FileContentHttpResult, ProblemHttpResult>> Download(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var artifact = await db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == tenant).Select(a => a.Artifact).SingleOrDefaultAsync(ct);
        return artifact is null ? ApiProblems.NotFound("adapter", id) : TypedResults.File(artifact, "application/zip", $"{id}.zip");
    }

    internal static async Task<Results<Ok<PredictResponse>, ProblemHttpResult>> Predict(
        string id, PredictRequest request, ClaimsPrincipal user, HttpContext context, ReadDbContext db, LoadedAdapterCache cache,
        InferenceBatcher batcher, IOptions<ReadOptions> options, IOptions<InferenceOptions> inference, CancellationToken ct)
    {
        // The body first, as the mixed endpoint does: a bad request costs no database round trip.
        var inputs = request.Inputs ?? [];
        if (PredictPipeline.Validate(inputs.Count, i => inputs[i] is { } input ? (input.Text, input.TextPair) : null, request.TopK, options.Value, inference.Value) is { } invalid)
            return invalid;
        var tenant = user.GetTenantId();
        var adapter = await db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == tenant)
            .Select(a => new { a.Id, a.BackboneId }).SingleOrDefaultAsync(ct);
        if (adapter is null)
            return ApiProblems.NotFound("adapter", id);

        Prediction[] predictions;
        try
        {
            predictions = await PredictPipeline.RunAsync(tenant, [new PredictPipeline.Group(adapter.Id, adapter.BackboneId, Enumerable.Range(0, inputs.Count).ToArray())],
                inputs.Select(i => i!.Text!).ToList(), inputs.Select(i => i!.TextPair).ToList(), db, cache, batcher, ct);
        }
        catch (Exception e) when (PredictPipeline.Failure(e, context, inference.Value, _ => ApiProblems.NotFound("adapter", id)) is { } failure)
        {
            return failure;
        }

        var topK = request.TopK ?? inference.Value.DefaultTopK;
        return TypedResults.Ok(new PredictResponse(adapter.Id,
            predictions.Select(p => new PredictionResponse(p.Label, PredictPipeline.TopK(p, topK), p.Value)).ToList()));
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, ClaimsPrincipal user, ReadDbContext db, LoadedAdapterCache cache, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var deleted = await db.Adapters.Where(a => a.Id == id && a.TenantId == tenant).ExecuteDeleteAsync(ct);
        if (deleted == 0)
            return ApiProblems.NotFound("adapter", id);
        cache.Remove(id);
        return TypedResults.NoContent();
    }
}
