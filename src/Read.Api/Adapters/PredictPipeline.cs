using Read.Domain.Backbones;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Inference;
using Read.Api.Problems;
using Read.Domain.Adapters;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Api.Adapters;

/// <summary>What both predict endpoints share: input limits, leasing adapters, the batcher, top_k, and the errors they map to.</summary>
internal static class PredictPipeline
{
    /// <summary>One adapter's inputs in a request: the positions they answer.</summary>
    public sealed record Group(string AdapterId, string BackboneId, int[] Indices);

    /// <summary>A 400 for the first input that breaks a limit, else null.</summary>
    public static ProblemHttpResult? Validate(int count, Func<int, (string? Text, string? Pair)?> input, int? topK, ReadOptions read, InferenceOptions inference)
    {
        if (count == 0)
            return ApiProblems.BadRequest("missing_inputs", "'inputs' must hold at least one {\"text\": ...} object.");
        if (count > read.MaxPredictBatch)
            return ApiProblems.BadRequest("too_many_inputs", $"At most {read.MaxPredictBatch} inputs per request (Read:MaxPredictBatch).");
        if (topK is { } k && (k < 1 || k > inference.MaxTopK))
            return ApiProblems.BadRequest("invalid_top_k", $"top_k must be between 1 and {inference.MaxTopK}.");
        var maxChars = read.MaxPredictTextChars;
        for (var i = 0; i < count; i++)
        {
            // A JSON null element binds to a null input: check it before reading its text.
            if (input(i) is not { Text: { } text } item || string.IsNullOrWhiteSpace(text))
                return ApiProblems.BadRequest("missing_text", $"inputs[{i}].text must be a non-empty string.", Index(i));
            // Tokenization truncates to max_length anyway; the limit keeps one request from holding megabytes of text.
            if (text.Length > maxChars || item.Pair?.Length > maxChars)
                return ApiProblems.BadRequest("text_too_long",
                    $"inputs[{i}]: text and text_pair are limited to {maxChars} characters each (Read:MaxPredictTextChars).", Index(i));
        }

        return null;
    }

    /// <summary>
    /// Predictions in input order: each group's adapter leased (loaded once if needed), its inputs sent to the batcher,
    /// every group at once so they can share forwards. The request was admitted once already (<see cref="PredictAdmission"/>).
    /// Throws <see cref="AdapterGoneException"/>, <see cref="BackboneUnavailableException"/>, <see cref="BackboneTooLargeException"/>
    /// and <see cref="InferenceUnavailableException"/> (see <see cref="Failure"/>). The leases end only after every group's
    /// batcher call has settled, so no part still queued or running can meet a disposed side network.
    /// </summary>
    public static async Task<Prediction[]> RunAsync(
        Guid tenant, IReadOnlyList<Group> groups, IReadOnlyList<string> texts, IReadOnlyList<string?> pairs,
        ReadDbContext db, LoadedAdapterCache cache, InferenceBatcher batcher, CancellationToken ct)
    {
        var leases = new List<LoadedAdapterCache.Lease>();
        try
        {
            // One at a time: a miss reads the artifact through this request's DbContext, which allows one query at once.
            foreach (var group in groups)
            {
                var id = group.AdapterId;
                leases.Add(await cache.AcquireAsync(id, group.BackboneId,
                    async () => await db.Adapters.AsNoTracking().Where(a => a.Id == id && a.TenantId == tenant).Select(a => a.Artifact).SingleOrDefaultAsync(CancellationToken.None),
                    ct));
                if (!leases[^1].Backbone.IsResident)
                    throw new BackboneTooLargeException(BackboneTooLargeException.OnlinePredict,
                        $"Backbone '{group.BackboneId}' is registered layer-streamed: its weights do not fit the memory budget " +
                        "(Read:Training:MemoryBudgetBytes), so it cannot answer online predictions. Send the same request body as a line of " +
                        "a batch instead (POST /v1/batches): batches run it layer-streamed.");
            }

            var tenantKey = tenant.ToString("N");
            var runs = groups.Select((g, n) => batcher.PredictAsync(tenantKey, leases[n].Backbone, leases[n].Adapter,
                g.Indices.Select(i => texts[i]).ToList(), pairs.Any(p => p is not null) ? g.Indices.Select(i => pairs[i]).ToList() : null, ct)).ToList();
            var results = await Task.WhenAll(runs); // waits for every group, also when one fails
            var predictions = new Prediction[texts.Count];
            for (var n = 0; n < groups.Count; n++)
                for (var k = 0; k < groups[n].Indices.Length; k++)
                    predictions[groups[n].Indices[k]] = results[n].Predictions[k];
            return predictions;
        }
        finally
        {
            foreach (var lease in leases)
                lease.Dispose();
        }
    }

    /// <summary>
    /// The answer for an exception <see cref="RunAsync"/> may throw, or null to let it propagate. <paramref name="gone"/>
    /// words the 404 for an adapter deleted while the request ran (the mixed endpoint names the input's index).
    /// </summary>
    public static ProblemHttpResult? Failure(Exception exception, HttpContext context, InferenceOptions options, Func<AdapterGoneException, ProblemHttpResult> gone) => exception switch
    {
        AdapterGoneException deleted => gone(deleted),
        // A deployment's configuration, not a passing state: no Retry-After.
        BackboneUnavailableException unavailable => ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, BackboneUnavailableException.Code, "Backbone unavailable", unavailable.Message),
        InferenceUnavailableException stopped => RetryLater(context, options, stopped),
        BackboneTooLargeException tooLarge => ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, tooLarge.Code, "Backbone too large for online predict", tooLarge.Message),
        _ => null,
    };

    private static ProblemHttpResult RetryLater(HttpContext context, InferenceOptions options, InferenceUnavailableException stopped)
    {
        context.Response.Headers.RetryAfter = options.QueueFullRetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return ApiProblems.Problem(StatusCodes.Status503ServiceUnavailable, "inference_unavailable", "Inference unavailable", stopped.Message);
    }

    /// <summary>The top_k most probable labels (ties in label order), most probable first.</summary>
    public static IReadOnlyDictionary<string, double>? TopK(Prediction prediction, int k)
    {
        if (prediction.Value is not null)
            return null;
        return prediction.Probabilities.OrderByDescending(p => p.Value).Take(k).ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
    }

    public static Dictionary<string, object?> Index(int index) => new() { ["index"] = index };
}
