using Read.Domain.FineTuning;

namespace Read.Domain.Jobs;

/// <summary>The stage names the API shows.</summary>
public static class FineTuneStages
{
    public static string Name(FineTuneStage stage) => stage switch
    {
        FineTuneStage.Precompute => "precompute",
        FineTuneStage.Train => "train",
        FineTuneStage.Evaluate => "evaluate",
        FineTuneStage.Publish => "publish",
        _ => throw new ArgumentOutOfRangeException(nameof(stage)),
    };
}
