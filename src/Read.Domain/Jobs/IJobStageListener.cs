using Read.Domain.FineTuning;

namespace Read.Domain.Jobs;

/// <summary>Observes a job entering each stage (telemetry, tests). An exception thrown here fails the job like any stage error.</summary>
public interface IJobStageListener
{
    void OnStageStarted(string jobId, FineTuneStage stage);

    /// <summary>A run ended without publishing because the job failed or was cancelled (<paramref name="status"/>); a throw here is logged, never fails anything.</summary>
    void OnRunEnded(string jobId, string status) { }
}
