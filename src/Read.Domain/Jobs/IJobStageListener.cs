using Read.Domain.FineTuning;

namespace Read.Domain.Jobs;

/// <summary>Observes a job entering each stage (telemetry, tests). An exception thrown here fails the job like any stage error.</summary>
public interface IJobStageListener
{
    void OnStageStarted(string jobId, FineTuneStage stage);

    /// <summary>The run's activation cache is open (hit or built); a throw here is logged, never fails anything.</summary>
    void OnPrecomputed(string jobId, PrecomputeOutcome outcome) { }

    /// <summary>
    /// A run ended without publishing: the job failed or was cancelled (<paramref name="status"/>), or the run stopped while
    /// the job goes on under another attempt (<see cref="JobStatus.Running"/>: a shutdown, a lost lease). A throw here is
    /// logged, never fails anything.
    /// </summary>
    void OnRunEnded(string jobId, string status) { }
}
