namespace Read.Domain.FineTuning;

/// <summary>
/// What a run's precompute did, for its receipt: whether the cache was reused, the tokens the backbone ran over (0 on a
/// hit), and the dataset's tokens after truncation. On a miss and with all-token pooling the count is at hand already (the
/// precompute's tokenization, the cache's position count); with single-position pooling on a hit it is counted off the
/// training thread, hence a task.
/// </summary>
public sealed record PrecomputeOutcome(bool CacheHit, long BackboneTokens, Task<long> DatasetTokens);
