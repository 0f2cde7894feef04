namespace Read.Domain.Batches;

/// <summary>OpenAI's batch statuses, stored as the same words the API returns. <c>expired</c> is never reached: Read does not enforce the completion window.</summary>
public static class BatchStatus
{
    public const string Validating = "validating";
    public const string InProgress = "in_progress";
    public const string Finalizing = "finalizing";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Cancelling = "cancelling";
    public const string Cancelled = "cancelled";

    /// <summary>The statuses a batch ends in; an array so queries can use it (<c>!Terminal.Contains(b.Status)</c>).</summary>
    public static readonly string[] Terminal = [Completed, Failed, Cancelled];

    public static bool IsTerminal(string status) => Terminal.Contains(status);
}
