namespace Read.Domain.FineTuning;

/// <summary>Receives stage changes, progress and per-epoch metrics from <see cref="ReadFineTuner"/>.</summary>
public interface IFineTuneProgress
{
    void StageStarted(FineTuneStage stage);

    /// <param name="fraction">Share of the stage done, 0..1.</param>
    void Progress(FineTuneStage stage, double fraction);

    void EpochCompleted(EpochMetrics metrics);
}
