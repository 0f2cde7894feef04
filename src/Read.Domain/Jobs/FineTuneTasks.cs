namespace Read.Domain.Jobs;

/// <summary>The task names jobs are created with.</summary>
public static class FineTuneTasks
{
    public const string Classification = "classification";
    public const string Regression = "regression";

    public static bool IsKnown(string task) => task is Classification or Regression;
}
