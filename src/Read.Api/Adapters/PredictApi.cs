using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Inference;
using Read.Api.Problems;
using Read.Domain.Adapters;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Api.Adapters;

/// <summary>POST /v1/predict: one request over several of the caller's adapters; the batcher shares their backbone forwards.</summary>
internal static class PredictApi
{
    public static IEndpointRouteBuilder MapPredictApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/predict", Predict).AdmittedAsPredict().WithTags("Adapters").RequireAuthorization(AuthPolicies.Tenant)
            .WithSummary("Predictions for inputs that each name one of the caller's adapters ({adapter, text, text_pair}), in input order.");
        return app;
    }

    internal static async Task<Results<Ok<MixedPredictResponse>, ProblemHttpResult>> Predict(
        MixedPredictRequest request, ClaimsPrincipal user, HttpContext context, ReadDbContext db, LoadedAdapterCache cache,
        InferenceBatcher batcher, IOptions<ReadOptions> options, IOptions<InferenceOptions> inference, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var inputs = request.Inputs ?? [];
        if (PredictPipeline.Validate(inputs.Count, i => inputs[i] is { } input ? (input.Text, input.TextPair) : null, request.TopK, options.Value, inference.Value) is { } invalid)
            return invalid;
        for (var i = 0; i < inputs.Count; i++)
        {
            if (string.IsNullOrWhiteSpace(inputs[i]!.Adapter))
                return ApiProblems.BadRequest("missing_adapter", $"inputs[{i}].adapter must name one of your adapters.", PredictPipeline.Index(i));
        }

        var ids = inputs.Select(i => i!.Adapter!).Distinct(StringComparer.Ordinal).ToList();
        var backbones = await db.Adapters.AsNoTracking().Where(a => ids.Contains(a.Id) && a.TenantId == tenant)
            .Select(a => new { a.Id, a.BackboneId }).ToDictionaryAsync(a => a.Id, a => a.BackboneId, ct);
        for (var i = 0; i < inputs.Count; i++)
        {
            // Another tenant's adapter is as unknown as a missing one: the answer must not reveal that it exists.
            if (!backbones.ContainsKey(inputs[i]!.Adapter!))
                return NoAdapter(inputs, i);
        }

        var groups = inputs.Select((input, i) => (input!.Adapter!, i)).GroupBy(x => x.Item1, StringComparer.Ordinal)
            .Select(g => new PredictPipeline.Group(g.Key, backbones[g.Key], g.Select(x => x.i).ToArray())).ToList();
        Prediction[] predictions;
        try
        {
            predictions = await PredictPipeline.RunAsync(tenant, groups, inputs.Select(i => i!.Text!).ToList(), inputs.Select(i => i!.TextPair).ToList(),
                db, cache, batcher, ct);
        }
        catch (Exception e) when (PredictPipeline.Failure(e, context, inference.Value,
            gone => NoAdapter(inputs, inputs.ToList().FindIndex(input => input!.Adapter == gone.AdapterId))) is { } failure)
        {
            // Deleted while the request ran: the same 404 as one unknown from the start, naming the first input that used it.
            return failure;
        }

        var topK = request.TopK ?? inference.Value.DefaultTopK;
        return TypedResults.Ok(new MixedPredictResponse(predictions.Select((p, i) =>
            new MixedPredictionResponse(inputs[i]!.Adapter!, p.Label, PredictPipeline.TopK(p, topK), p.Value)).ToList()));
    }

    private static ProblemHttpResult NoAdapter(IReadOnlyList<MixedPredictInput?> inputs, int i) =>
        ApiProblems.Problem(StatusCodes.Status404NotFound, "not_found", "Not found", $"inputs[{i}]: no adapter '{inputs[i]!.Adapter}'.", PredictPipeline.Index(i));
}
