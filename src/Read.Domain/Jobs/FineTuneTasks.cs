using Read.Domain.FineTuning;

namespace Read.Domain.Jobs;

/// <summary>The task names jobs are created with.</summary>
public static class FineTuneTasks
{
    public const string Classification = "classification";
    public const string Regression = "regression";

    public static bool IsKnown(string task) => task is Classification or Regression;

    public static FineTuneTask Parse(string task) => task switch
    {
        Classification => FineTuneTask.Classification,
        Regression => FineTuneTask.Regression,
        _ => throw new ArgumentOutOfRangeException(nameof(task), task, "Unknown task."),
    };
}
