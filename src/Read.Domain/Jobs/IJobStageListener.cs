using Read.Domain.FineTuning;

namespace Read.Domain.Jobs;

/// <summary>Observes a job entering each stage (telemetry, tests). An exception thrown here fails the job like any stage error.</summary>
public interface IJobStageListener
{
    void OnStageStarted(string jobId, FineTuneStage stage);
}
