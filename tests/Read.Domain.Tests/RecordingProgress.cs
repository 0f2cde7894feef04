using Read.Domain.Backbones;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests;

/// <summary>Records stages, epochs and the backbone's forward count when each stage starts.</summary>
internal sealed class RecordingProgress(Backbone backbone) : IFineTuneProgress
{
    public List<(FineTuneStage Stage, long ForwardCalls)> Stages { get; } = [];

    public List<EpochMetrics> Epochs { get; } = [];

    public List<(FineTuneStage Stage, double Fraction)> Fractions { get; } = [];

    public long ForwardCallsAt(FineTuneStage stage) => Stages.Single(s => s.Stage == stage).ForwardCalls;

    public void StageStarted(FineTuneStage stage) => Stages.Add((stage, backbone.ForwardCalls));

    public void Progress(FineTuneStage stage, double fraction) => Fractions.Add((stage, fraction));

    public void EpochCompleted(EpochMetrics metrics) => Epochs.Add(metrics);
}
