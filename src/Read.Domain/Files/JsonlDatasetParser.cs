using System.Text;
using System.Text.Json;
using Read.Domain.Datasets;

namespace Read.Domain.Files;

/// <summary>Parses and validates dataset JSONL: one object per line with "text", "label" and optional "text_pair".</summary>
public static class JsonlDatasetParser
{
    public const int MaxTextCharacters = 100_000;

    /// <summary>Parses <paramref name="content"/>; on the first problem returns an error whose message names the 1-based line.</summary>
    public static DatasetParseResult Parse(ReadOnlySpan<byte> content)
    {
        if (content.StartsWith("\uFEFF"u8))
            content = content[3..];
        var examples = new List<LabeledExample>();
        var lineNumber = 0;
        while (!content.IsEmpty)
        {
            lineNumber++;
            var newline = content.IndexOf((byte)'\n');
            var line = newline < 0 ? content : content[..newline];
            content = newline < 0 ? [] : content[(newline + 1)..];
            if (line.EndsWith("\r"u8))
                line = line[..^1];
            if (IsBlank(line))
                continue;

            var error = TryParseLine(line, lineNumber, out var example);
            if (error is not null)
                return DatasetParseResult.Fail(error.Value.Code, error.Value.Message, lineNumber);
            examples.Add(example!);
        }

        if (examples.Count == 0)
            return DatasetParseResult.Fail("empty_file", "The file contains no examples.", null);
        var labels = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (labels.Count < 2)
            return DatasetParseResult.Fail("single_label",
                $"Classification needs at least two label classes; every example is labelled \"{labels[0]}\".", null);
        return DatasetParseResult.Ok(examples, labels);
    }

    private static (string Code, string Message)? TryParseLine(ReadOnlySpan<byte> line, int lineNumber, out LabeledExample? example)
    {
        example = null;
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(line);
            if (!JsonDocument.TryParseValue(ref reader, out var parsed) || parsed is null)
                return ("invalid_json", $"Line {lineNumber}: not valid JSON.");
            document = parsed;
            if (reader.Read())
                return ("invalid_json", $"Line {lineNumber}: unexpected content after the JSON object.");
        }
        catch (JsonException e)
        {
            return ("invalid_json", $"Line {lineNumber}: not valid JSON ({e.Message.Split(" Path:")[0]})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return ("invalid_json", $"Line {lineNumber}: expected a JSON object.");
            if (!root.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(text.GetString()))
                return ("missing_text", $"Line {lineNumber}: \"text\" must be a non-empty string.");
            if (!root.TryGetProperty("label", out var label) || label.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
                return ("missing_label", $"Line {lineNumber}: \"label\" is required.");
            var labelText = label.ValueKind switch
            {
                JsonValueKind.String => label.GetString(),
                JsonValueKind.Number => label.GetRawText(),
                JsonValueKind.True or JsonValueKind.False => label.GetRawText(),
                _ => null,
            };
            if (string.IsNullOrWhiteSpace(labelText))
                return ("missing_label", $"Line {lineNumber}: \"label\" must be a non-empty string, number or boolean.");
            string? pair = null;
            if (root.TryGetProperty("text_pair", out var pairElement) && pairElement.ValueKind != JsonValueKind.Null)
            {
                if (pairElement.ValueKind != JsonValueKind.String)
                    return ("invalid_text_pair", $"Line {lineNumber}: \"text_pair\" must be a string.");
                pair = pairElement.GetString();
            }
            var textValue = text.GetString()!;
            if (textValue.Length > MaxTextCharacters || (pair?.Length ?? 0) > MaxTextCharacters)
                return ("text_too_long", $"Line {lineNumber}: a text is longer than {MaxTextCharacters} characters.");
            example = new LabeledExample(textValue, pair, labelText);
            return null;
        }
    }

    private static bool IsBlank(ReadOnlySpan<byte> line)
    {
        foreach (var b in line)
            if (b is not ((byte)' ' or (byte)'\t'))
                return false;
        return true;
    }

    /// <summary>Serialises examples back to the canonical JSONL form (used by tests and tools).</summary>
    public static byte[] Write(IEnumerable<LabeledExample> examples)
    {
        // Readable files: no \u0027 for apostrophes. Still valid JSON; the files are data, never embedded in HTML.
        var options = new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var sb = new StringBuilder();
        foreach (var e in examples)
        {
            var obj = new Dictionary<string, string> { ["text"] = e.Text, ["label"] = e.Label };
            if (e.TextPair is not null)
                obj["text_pair"] = e.TextPair;
            sb.Append(JsonSerializer.Serialize(obj, options)).Append('\n');
        }
        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}
