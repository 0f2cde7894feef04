using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Read.Domain.Datasets;
using Read.Domain.Persistence;

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
        // The JSON type of the first label: 1 and "1" would otherwise become the same class (docs/decisions/008).
        JsonValueKind? labelKind = null;
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

            // System.Text.Json does not validate UTF-8 inside strings until it transcodes them, and then throws.
            if (!Utf8.IsValid(line))
                return DatasetParseResult.Fail("invalid_encoding", $"Line {lineNumber}: not valid UTF-8 (save the file as UTF-8).", lineNumber);
            var error = TryParseLine(line, lineNumber, out var example, out var kind);
            if (error is not null)
                return DatasetParseResult.Fail(error.Value.Code, error.Value.Message, lineNumber);
            labelKind ??= kind;
            if (KindName(kind) != KindName(labelKind.Value))
                return DatasetParseResult.Fail("mixed_label_types",
                    $"Line {lineNumber}: the label is a {KindName(kind)} but earlier labels are {KindName(labelKind.Value)}s; use one JSON type for every label.",
                    lineNumber);
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

    private static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        _ => "boolean",
    };

    private static (string Code, string Message)? TryParseLine(
        ReadOnlySpan<byte> line, int lineNumber, out LabeledExample? example, out JsonValueKind labelKind)
    {
        example = null;
        labelKind = JsonValueKind.Undefined;
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
            try
            {
                return ReadExample(document.RootElement, lineNumber, out example, out labelKind);
            }
            catch (InvalidOperationException)
            {
                // GetString throws on an escaped lone surrogate such as "\ud800", which no database could store either.
                return ("invalid_characters", $"Line {lineNumber}: a string holds an unpaired surrogate escape.");
            }
        }
    }

    private static (string Code, string Message)? ReadExample(JsonElement root, int lineNumber, out LabeledExample? example, out JsonValueKind labelKind)
    {
        example = null;
        labelKind = JsonValueKind.Undefined;
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
        foreach (var (field, value) in new[] { ("text", textValue), ("text_pair", pair), ("label", labelText) })
            if (!StorableText.IsValid(value))
                return ("invalid_characters", $"Line {lineNumber}: \"{field}\" contains a NUL character or an unpaired surrogate.");
        labelKind = label.ValueKind;
        example = new LabeledExample(textValue, pair, labelText);
        return null;
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
