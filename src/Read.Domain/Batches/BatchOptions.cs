namespace Read.Domain.Batches;

/// <summary>Limits and chunking of batch prediction jobs (section Read:Batches).</summary>
public sealed class BatchOptions
{
    public const string Section = "Read:Batches";

    /// <summary>Most request lines one input file may hold (OpenAI's limit).</summary>
    public int MaxRequests { get; set; } = 50_000;

    /// <summary>
    /// Distinct texts per chunk: one chunk's states are computed (streamed: every layer read from disk once per chunk),
    /// consumed and freed before the next; cancellation is seen between chunks.
    /// </summary>
    public int ChunkTexts { get; set; } = 2048;

    /// <summary>Where a streamed chunk keeps its scratch states; empty: under the activation cache directory.</summary>
    public string ScratchDirectory { get; set; } = "";
}
