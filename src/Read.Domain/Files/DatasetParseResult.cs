using Read.Domain.Datasets;

namespace Read.Domain.Files;

/// <summary>Either the parsed examples and their label set, or an error with a stable code and the offending line.</summary>
public sealed record DatasetParseResult(
    IReadOnlyList<LabeledExample> Examples,
    IReadOnlyList<string> Labels,
    string? ErrorCode,
    string? ErrorMessage,
    int? ErrorLine)
{
    /// <summary>Examples parsed (equals Examples.Count unless the parse kept only the summary).</summary>
    public int ExampleCount { get; init; }
    public bool HasTextPairs { get; init; }

    public bool Succeeded => ErrorCode is null;

    public static DatasetParseResult Ok(IReadOnlyList<LabeledExample> examples, IReadOnlyList<string> labels) =>
        new(examples, labels, null, null, null) { ExampleCount = examples.Count, HasTextPairs = examples.Any(e => e.TextPair is not null) };

    public static DatasetParseResult Ok(IReadOnlyList<LabeledExample> examples, IReadOnlyList<string> labels, int count, bool hasTextPairs) =>
        new(examples, labels, null, null, null) { ExampleCount = count, HasTextPairs = hasTextPairs };

    public static DatasetParseResult Fail(string code, string message, int? line) =>
        new([], [], code, message, line);
}
