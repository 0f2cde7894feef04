using System.Text.Json;
using System.Text.RegularExpressions;
using System.Text.Unicode;

namespace Read.Domain.Batches;

/// <summary>
/// A batch input file: one request a line, {"custom_id", "method": "POST", "url", "body": {...}} as in OpenAI's Batch
/// API. Parsed on upload (errors name the 1-based line) and again by the runner.
/// </summary>
public static partial class BatchInputFile
{
    public const string MixedPredictUrl = "/v1/predict";
    public const string AdapterPredictUrl = "/v1/adapters/{id}/predict";
    public const int MaxCustomIdChars = 512;

    public static readonly IReadOnlyList<string> Endpoints = [MixedPredictUrl, AdapterPredictUrl];

    /// <summary>One request line. <see cref="AdapterId"/> is the id in an adapter url, null for /v1/predict.</summary>
    public sealed record Line(int Number, string CustomId, string Url, string? AdapterId, JsonElement Body)
    {
        public string Endpoint => AdapterId is null ? MixedPredictUrl : AdapterPredictUrl;
    }

    public sealed record Result(IReadOnlyList<Line> Lines, string? ErrorCode, string? ErrorMessage, int? ErrorLine)
    {
        public bool Succeeded => ErrorCode is null;
    }

    [GeneratedRegex("^/v1/adapters/([A-Za-z0-9_.-]{1,64})/predict$")]
    private static partial Regex AdapterUrl();

    public static Result Parse(ReadOnlySpan<byte> content, int maxRequests)
    {
        if (content.StartsWith("\uFEFF"u8))
            content = content[3..];
        var lines = new List<Line>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var number = 0;
        while (!content.IsEmpty)
        {
            number++;
            var newline = content.IndexOf((byte)'\n');
            var text = newline < 0 ? content : content[..newline];
            content = newline < 0 ? [] : content[(newline + 1)..];
            if (text.EndsWith("\r"u8))
                text = text[..^1];
            if (text.Trim(" \t"u8).IsEmpty)
                continue;
            if (lines.Count == maxRequests)
                return Fail("too_many_requests", $"Line {number}: a batch holds at most {maxRequests} requests (Read:Batches:MaxRequests).", number);
            if (!Utf8.IsValid(text))
                return Fail("invalid_encoding", $"Line {number}: not valid UTF-8 (save the file as UTF-8).", number);
            var (line, code, message) = ParseLine(text, number);
            if (code is not null)
                return Fail(code, message!, number);
            if (!ids.Add(line!.CustomId))
                return Fail("duplicate_custom_id", $"Line {number}: custom_id '{line.CustomId}' is used by an earlier line; each request needs its own.", number);
            lines.Add(line);
        }

        return lines.Count == 0 ? Fail("empty_file", "The file contains no requests.", null) : new Result(lines, null, null, null);
    }

    private static Result Fail(string code, string message, int? line) => new([], code, message, line);

    private static (Line? Line, string? Code, string? Message) ParseLine(ReadOnlySpan<byte> text, int number)
    {
        JsonElement root;
        try
        {
            var reader = new Utf8JsonReader(text);
            if (!JsonDocument.TryParseValue(ref reader, out var document) || document is null)
                return (null, "invalid_json", $"Line {number}: not valid JSON.");
            using (document)
            {
                if (reader.Read())
                    return (null, "invalid_json", $"Line {number}: unexpected content after the JSON object.");
                root = document.RootElement.Clone();
            }
        }
        catch (JsonException e)
        {
            return (null, "invalid_json", $"Line {number}: not valid JSON ({e.Message.Split(" Path:")[0]})");
        }

        if (root.ValueKind != JsonValueKind.Object)
            return (null, "invalid_json", $"Line {number}: expected a JSON object.");
        string? customId;
        try
        {
            customId = root.TryGetProperty("custom_id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null;
        }
        catch (InvalidOperationException)
        {
            return (null, "invalid_characters", $"Line {number}: custom_id holds an unpaired surrogate escape.");
        }

        if (string.IsNullOrWhiteSpace(customId))
            return (null, "missing_custom_id", $"Line {number}: \"custom_id\" must be a non-empty string.");
        if (customId.Length > MaxCustomIdChars || !Persistence.StorableText.IsValid(customId))
            return (null, "invalid_custom_id", $"Line {number}: \"custom_id\" must be at most {MaxCustomIdChars} storable characters.");
        if (!root.TryGetProperty("method", out var method) || method.ValueKind != JsonValueKind.String || method.GetString() != "POST")
            return (null, "invalid_method", $"Line {number}: \"method\" must be \"POST\".");
        var url = root.TryGetProperty("url", out var u) && u.ValueKind == JsonValueKind.String ? u.GetString() : null;
        string? adapterId = null;
        if (url != MixedPredictUrl)
        {
            var match = url is null ? null : AdapterUrl().Match(url);
            if (match is not { Success: true })
                return (null, "invalid_url", $"Line {number}: \"url\" must be \"{MixedPredictUrl}\" or \"/v1/adapters/{{id}}/predict\".");
            adapterId = match.Groups[1].Value;
        }

        if (!root.TryGetProperty("body", out var body) || body.ValueKind != JsonValueKind.Object)
            return (null, "invalid_body", $"Line {number}: \"body\" must be a JSON object (the body the endpoint takes).");
        return (new Line(number, customId, url!, adapterId, body), null, null);
    }
}
