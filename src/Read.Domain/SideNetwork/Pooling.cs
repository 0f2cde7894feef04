namespace Read.Domain.SideNetwork;

/// <summary>
/// Which positions of the final hidden state a head reads: the mean over all real tokens, the first token ([CLS],
/// encoders), or the last real token (causal decoders, as LlamaForSequenceClassification reads it).
/// </summary>
public static class Pooling
{
    public const string Mean = "mean";
    public const string Cls = "cls";
    public const string Last = "last";

    public static readonly IReadOnlyList<string> All = [Mean, Cls, Last];

    /// <summary>One stored position per example (cls, last) rather than every real token (mean).</summary>
    public static bool IsSinglePosition(string pooling) => pooling is Cls or Last;
}
