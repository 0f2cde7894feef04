using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Problems;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Api.Adapters;

internal static class AdaptersApi
{
    public sealed record AdapterList(IReadOnlyList<AdapterResponse> Data);

    public static IEndpointRouteBuilder MapAdaptersApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/adapters").WithTags("Adapters").RequireAuthorization(AuthPolicies.Tenant);
        group.MapGet("/", List).WithSummary("The calling tenant's adapters, newest first.");
        group.MapGet("/{id}", Get).WithSummary("Adapter metadata: backbone, config, metrics, size, sha256.");
        group.MapGet("/{id}/download", Download).WithSummary("The adapter artifact (zip: adapter_config.json, adapter_model.safetensors, metrics.json).");
        group.MapPost("/{id}/predict", Predict).WithSummary("Labels and probabilities for a batch of inputs (backbone + side network).");
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

    internal static async Task<Ok<AdapterList>> List(ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var adapters = await WithoutArtifact(db.Adapters.AsNoTracking().Where(a => a.TenantId == tenant).OrderByDescending(a => a.CreatedAt))
            .ToListAsync(ct);
        return TypedResults.Ok(new AdapterList(adapters.Select(AdapterResponse.From).ToList()));
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
        string id, PredictRequest request, ClaimsPrincipal user, ReadDbContext db, LoadedAdapterCache cache,
        IOptions<ReadOptions> options, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var adapter = await db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == tenant)
            .Select(a => new { a.Id, a.BackboneId }).SingleOrDefaultAsync(ct);
        if (adapter is null)
            return ApiProblems.NotFound("adapter", id);
        var inputs = request.Inputs;
        if (inputs is null || inputs.Count == 0)
            return ApiProblems.BadRequest("missing_inputs", "'inputs' must hold at least one {\"text\": ...} object.");
        if (inputs.Count > options.Value.MaxPredictBatch)
            return ApiProblems.BadRequest("too_many_inputs", $"At most {options.Value.MaxPredictBatch} inputs per request.");
        var maxChars = options.Value.MaxPredictTextChars;
        for (var i = 0; i < inputs.Count; i++)
        {
            // A JSON null element binds to a null input: check it before reading its text.
            if (inputs[i] is not { Text: { } text } input || string.IsNullOrWhiteSpace(text))
                return ApiProblems.BadRequest("missing_text", $"inputs[{i}].text must be a non-empty string.", Index(i));
            // Tokenization truncates to max_length anyway; the limit keeps one request from holding megabytes of text.
            if (text.Length > maxChars || input.TextPair?.Length > maxChars)
                return ApiProblems.BadRequest("text_too_long",
                    $"inputs[{i}]: text and text_pair are limited to {maxChars} characters each (Read:MaxPredictTextChars).", Index(i));
        }

        using var lease = cache.Acquire(adapter.Id, adapter.BackboneId,
            () => db.Adapters.Where(a => a.Id == id && a.TenantId == tenant).Select(a => a.Artifact).Single());
        if (!lease.Backbone.IsResident)
            return ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, BackboneTooLargeException.OnlinePredict, "Backbone too large for online predict",
                $"Backbone '{adapter.BackboneId}' is registered layer-streamed: its weights do not fit the worker's memory budget (Read:Training:MemoryBudgetBytes), so it cannot answer online predictions.");
        var predictions = await Task.Run(() => AdapterPredictor.Predict(lease.Backbone, lease.Adapter,
            inputs.Select(i => i.Text!).ToList(), inputs.Select(i => i.TextPair).ToList()), ct);
        return TypedResults.Ok(new PredictResponse(adapter.Id,
            predictions.Select(p => new PredictionResponse(p.Label, p.Value is null ? p.Probabilities : null, p.Value)).ToList()));
    }

    private static Dictionary<string, object?> Index(int index) => new() { ["index"] = index };

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
