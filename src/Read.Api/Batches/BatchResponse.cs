using System.Text.Json;
using System.Text.Json.Serialization;
using Read.Domain.Batches;
using Read.Domain.Configuration;

namespace Read.Api.Batches;

/// <summary>
/// A batch as OpenAI's Batch API shows it: every field present, null until it applies. <c>expires_at</c> is
/// <c>created_at</c> plus the completion window; the window is not enforced, so <c>expired_at</c> stays null
/// (docs/decisions/017-batch-prediction.md).
/// </summary>
internal sealed record BatchResponse(
    string Id,
    string Object,
    string Endpoint,
    string InputFileId,
    string CompletionWindow,
    string Status,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? OutputFileId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? ErrorFileId,
    long CreatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? InProgressAt,
    long ExpiresAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? FinalizingAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? CompletedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? FailedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? ExpiredAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? CancellingAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] long? CancelledAt,
    BatchRequestCounts RequestCounts,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] BatchErrors? Errors,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Dictionary<string, string?>? Metadata)
{
    // OpenAI's timestamps are Unix seconds.
    private static long? Unix(DateTime? at) => at is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)).ToUnixTimeSeconds() : null;

    public static BatchResponse From(PredictionBatch b) => new(
        b.Id, "batch", b.Endpoint, b.InputFileId, b.CompletionWindow, b.Status, b.OutputFileId, b.ErrorFileId,
        Unix(b.CreatedAt)!.Value, Unix(b.InProgressAt), Unix(b.CreatedAt + BatchesApi.CompletionWindowLength)!.Value, Unix(b.FinalizingAt), Unix(b.CompletedAt),
        Unix(b.FailedAt), ExpiredAt: null, Unix(b.CancellingAt), Unix(b.CancelledAt),
        new BatchRequestCounts(b.TotalRequests, b.CompletedRequests, b.FailedRequests),
        b.ErrorsJson is null ? null : new BatchErrors("list", JsonSerializer.Deserialize<List<BatchError>>(b.ErrorsJson, JsonDefaults.SnakeCase)!),
        b.MetadataJson is null ? null : JsonSerializer.Deserialize<Dictionary<string, string?>>(b.MetadataJson));
}

internal sealed record BatchRequestCounts(int Total, int Completed, int Failed);

internal sealed record BatchErrors(string Object, IReadOnlyList<BatchError> Data);

/// <summary>Body of POST /v1/batches.</summary>
internal sealed record CreateBatchRequest(string? InputFileId, string? Endpoint, string? CompletionWindow, Dictionary<string, JsonElement>? Metadata);
