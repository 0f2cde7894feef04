namespace Read.Api.Inference;

/// <summary>Predict-path settings (configuration section "Read:Inference").</summary>
internal sealed class InferenceOptions
{
    public const string Section = "Read:Inference";

    /// <summary>Gather concurrent predicts into shared backbone forwards. Off: each request runs its own forward (the old path).</summary>
    public bool Batching { get; set; } = true;

    /// <summary>How long the batcher waits for more requests after the first one arrives, in milliseconds (0: take what is queued).</summary>
    public int MaxBatchDelayMs { get; set; } = 2;

    /// <summary>Most rows (texts) in one backbone forward; a larger request is split.</summary>
    public int MaxBatchRows { get; set; } = 64;

    /// <summary>Most padded tokens in one forward, counted at each adapter's max_length (an upper bound on the real width).</summary>
    public int MaxBatchTokens { get; set; } = 16_384;

    /// <summary>
    /// Most rows in one backbone forward inside a batch: the batch's union is tokenized once, sorted by length and run in
    /// forwards of at most this many rows, so short texts are not padded to the longest one (see ADR 013).
    /// </summary>
    public int MaxForwardRows { get; set; } = Read.Domain.Adapters.SharedForwardPredictor.DefaultForwardRows;

    /// <summary>Most padded tokens in one backbone forward inside a batch.</summary>
    public int MaxForwardTokens { get; set; } = Read.Domain.Adapters.SharedForwardPredictor.DefaultForwardTokens;

    /// <summary>
    /// Most rows of one tenant in a batch while another tenant has work on the same backbone (or had, within the last
    /// second); requests are split into parts of at most this many rows. A tenant alone still fills whole batches. Keeps a
    /// flood's batches short; equal to <see cref="MaxForwardRows"/>, a part of texts cut at max_length (rows of one length,
    /// which keep their order when sorted) fills one forward, so a batch that a newly arrived tenant stops between forwards
    /// has finished whole parts rather than computed pieces of many.
    /// </summary>
    public int MaxTenantBatchRows { get; set; } = Read.Domain.Adapters.SharedForwardPredictor.DefaultForwardRows;

    /// <summary>Predict requests admitted and not yet answered; one more answers 429 with Retry-After.</summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>The Retry-After a 429 for a full queue carries, in seconds.</summary>
    public int QueueFullRetryAfterSeconds { get; set; } = 1;

    /// <summary>Most side networks kept loaded (least recently used evicted first).</summary>
    public int MaxLoadedAdapters { get; set; } = 64;

    /// <summary>Most artifact bytes kept loaded (the artifact size stands for the adapter's weights).</summary>
    public long MaxLoadedAdapterBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>Labels whose probabilities a prediction carries when the request names no top_k.</summary>
    public int DefaultTopK { get; set; } = 5;

    /// <summary>Largest top_k a request may ask for.</summary>
    public int MaxTopK { get; set; } = 1000;

    public bool IsValid() =>
        MaxBatchDelayMs >= 0 && MaxBatchRows > 0 && MaxTenantBatchRows > 0 && MaxForwardRows > 0 && MaxForwardTokens > 0 && MaxBatchTokens > 0 && MaxQueuedRequests > 0 && QueueFullRetryAfterSeconds > 0
        && MaxLoadedAdapters > 0 && MaxLoadedAdapterBytes > 0 && DefaultTopK > 0 && MaxTopK >= DefaultTopK;
}
