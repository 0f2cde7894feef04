namespace Read.Domain.Jobs;

/// <summary>Lifecycle of a fine-tuning job. Stored as lowercase strings, the same words the API returns.</summary>
public static class JobStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}
