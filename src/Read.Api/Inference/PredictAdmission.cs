using System.Globalization;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Read.Api.Problems;
using Read.Domain.Configuration;

namespace Read.Api.Inference;

/// <summary>
/// Admission for the predict endpoints, before any of the request body is read: a body larger than the endpoint's limit
/// answers 413 <c>payload_too_large</c>, and a request past <see cref="InferenceOptions.MaxQueuedRequests"/> answers 429
/// <c>inference_queue_full</c> with Retry-After. Only an admitted request has its body parsed and its adapter looked up
/// and loaded, so the predict path holds at most MaxQueuedRequests requests of at most <see cref="BodyLimit"/> bytes, and
/// a request over many adapters takes one place, all or nothing.
/// </summary>
internal static class PredictAdmission
{
    /// <summary>Bytes of JSON per input besides its two texts: field names, quotes, commas, an adapter id.</summary>
    private const long InputOverheadBytes = 1024;

    /// <summary>Bytes of JSON a character may take: <c>\uXXXX</c>, as .NET's and Python's encoders write non-ASCII by default.</summary>
    private const long BytesPerChar = 6;

    /// <summary>Marks an endpoint as a predict: admitted by <see cref="UseReadPredictAdmission"/>.</summary>
    private sealed class PredictEndpoint;

    public static RouteHandlerBuilder AdmittedAsPredict(this RouteHandlerBuilder builder) => builder.WithMetadata(new PredictEndpoint());

    /// <summary>
    /// The largest body a valid predict can have: every input at its text and text_pair limits, each character escaped.
    /// Kestrel's own limit (Kestrel:Limits:MaxRequestBodySize, 30 MB by default) still applies when lower.
    /// </summary>
    public static long BodyLimit(ReadOptions read) => read.MaxPredictBatch * (2 * read.MaxPredictTextChars * BytesPerChar + InputOverheadBytes) + InputOverheadBytes;

    /// <summary>After authentication, rate limits and authorization: a refused or unknown caller never takes a place.</summary>
    public static void UseReadPredictAdmission(this WebApplication app) => app.Use(async (context, next) =>
    {
        if (context.GetEndpoint()?.Metadata.GetMetadata<PredictEndpoint>() is null)
        {
            await next(context);
            return;
        }

        var services = context.RequestServices;
        var limit = BodyLimit(services.GetRequiredService<IOptions<ReadOptions>>().Value);
        var bodySize = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (bodySize?.MaxRequestBodySize is { } serverLimit && serverLimit < limit)
            limit = serverLimit;
        if (context.Request.ContentLength > limit)
        {
            await ApiProblems.Write(context, StatusCodes.Status413PayloadTooLarge, "payload_too_large", "Payload too large", LimitDetail(limit));
            return;
        }

        // A chunked body is cut off at the limit while it is read (Kestrel's 413, answered as payload_too_large).
        if (bodySize is { IsReadOnly: false })
            bodySize.MaxRequestBodySize = limit;

        InferenceBatcher.Admission admission;
        try
        {
            admission = services.GetRequiredService<InferenceBatcher>().Admit();
        }
        catch (InferenceQueueFullException full)
        {
            var options = services.GetRequiredService<IOptions<InferenceOptions>>().Value;
            context.Response.Headers.RetryAfter = options.QueueFullRetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
            await ApiProblems.Write(context, StatusCodes.Status429TooManyRequests, "inference_queue_full", "Too many requests", full.Message);
            return;
        }

        // Held until the response is written, or the request is abandoned (a disconnect cancels its queued work at once).
        using (admission)
            await next(context);
    });

    private static string LimitDetail(long limit) =>
        $"A predict body is limited to {limit} bytes (Read:MaxPredictBatch inputs of Read:MaxPredictTextChars characters each, and Kestrel's MaxRequestBodySize).";
}
