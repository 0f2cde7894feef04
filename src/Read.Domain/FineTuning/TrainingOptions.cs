namespace Read.Domain.FineTuning;

/// <summary>Fine-tuning settings of a worker (configuration section <c>Read:Training</c>).</summary>
public sealed class TrainingOptions
{
    public const string Section = "Read:Training";

    /// <summary>
    /// Memory a backbone's weights (in the dtype it computes in) plus headroom may take; a backbone over it is registered
    /// layer-streamed (docs/decisions/011-layer-streamed-precompute.md). Null or 0: half the memory this process may use
    /// (the container limit, else physical memory).
    /// </summary>
    public long? MemoryBudgetBytes { get; set; }

    /// <summary>The budget in force: <see cref="MemoryBudgetBytes"/> or half the memory available to the process.</summary>
    public long EffectiveMemoryBudgetBytes =>
        MemoryBudgetBytes is > 0 and var bytes ? bytes : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
}
