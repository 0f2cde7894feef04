namespace Read.Domain.Sweeps;

/// <summary>A sweep's recorded state; the API shows a running sweep as queued until one of its trials runs.</summary>
public static class SweepStatus
{
    public const string Running = "running";
    /// <summary>Every trial finished and one was promoted.</summary>
    public const string Succeeded = "succeeded";
    /// <summary>Every trial finished and none succeeded with a value for the sweep's metric.</summary>
    public const string Failed = "failed";
    /// <summary>The sweep was cancelled (or every trial was): nothing is promoted.</summary>
    public const string Cancelled = "cancelled";
}
