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
    public bool Succeeded => ErrorCode is null;

    public static DatasetParseResult Ok(IReadOnlyList<LabeledExample> examples, IReadOnlyList<string> labels) =>
        new(examples, labels, null, null, null);

    public static DatasetParseResult Fail(string code, string message, int? line) =>
        new([], [], code, message, line);
}
