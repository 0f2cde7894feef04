using System.Buffers;
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
        var reader = new Incremental();
        reader.Append(content);
        return reader.Complete();
    }

    /// <summary>Parses a stream chunk by chunk (never the whole file in one buffer); same errors as <see cref="Parse"/>.</summary>
    public static async Task<DatasetParseResult> ParseAsync(Stream content, CancellationToken ct, bool keepExamples = true)
    {
        var reader = new Incremental(keepExamples);
        var buffer = new byte[81920];
        int read;
        while ((read = await content.ReadAsync(buffer, ct)) > 0)
            if (!reader.Append(buffer.AsSpan(0, read)))
                break;
        return reader.Complete();
    }

    /// <summary>
    /// Validates JSONL fed in arbitrary pieces (an upload as it streams in): whole lines are parsed as soon as their
    /// newline arrives, so only the current partial line is buffered. Without <c>keepExamples</c> only the label set,
    /// the count and whether any example has a text pair are kept, which is all an upload needs.
    /// </summary>
    public sealed class Incremental(bool keepExamples = true)
    {
        private readonly List<LabeledExample> _examples = [];
        private readonly HashSet<string> _labels = new(StringComparer.Ordinal);
        private readonly System.Buffers.ArrayBufferWriter<byte> _partial = new();
        // The JSON type of the first label: 1 and "1" would otherwise become the same class (docs/decisions/008).
        private JsonValueKind? _labelKind;
        private int _lineNumber;
        private int _count;
        private bool _started;
        private DatasetParseResult? _failure;

        public int ExampleCount => _count;
        public bool HasTextPairs { get; private set; }

        /// <summary>Feeds the next bytes; false once an error was found (later input is ignored).</summary>
        public bool Append(ReadOnlySpan<byte> content)
        {
            if (_failure is not null)
                return false;
            if (!_started)
            {
                // The BOM may arrive split across pieces: hold back until three bytes are seen.
                if (_partial.WrittenCount + content.Length < 3)
                {
                    _partial.Write(content);
                    return true;
                }
                if (_partial.WrittenCount > 0)
                {
                    var head = new byte[_partial.WrittenCount + content.Length];
                    _partial.WrittenSpan.CopyTo(head);
                    content.CopyTo(head.AsSpan(_partial.WrittenCount));
                    _partial.Clear();
                    content = head;
                }
                _started = true;
                if (content.StartsWith("\uFEFF"u8))
                    content = content[3..];
            }
            while (!content.IsEmpty)
            {
                var newline = content.IndexOf((byte)'\n');
                if (newline < 0)
                {
                    _partial.Write(content);
                    return true;
                }
                if (_partial.WrittenCount > 0)
                {
                    _partial.Write(content[..newline]);
                    var line = _partial.WrittenSpan.ToArray();
                    _partial.Clear();
                    Line(line);
                }
                else
                    Line(content[..newline]);
                if (_failure is not null)
                    return false;
                content = content[(newline + 1)..];
            }
            return true;
        }

        /// <summary>Ends the input: the last line need not end with a newline.</summary>
        public DatasetParseResult Complete()
        {
            _started = true; // a file shorter than a BOM is just a (bad) line
            if (_failure is null && _partial.WrittenCount > 0)
            {
                var line = _partial.WrittenSpan.ToArray();
                _partial.Clear();
                Line(line);
            }
            if (_failure is not null)
                return _failure;
            if (_count == 0)
                return DatasetParseResult.Fail("empty_file", "The file contains no examples.", null);
            var labels = _labels.Order(StringComparer.Ordinal).ToList();
            if (labels.Count < 2)
                return DatasetParseResult.Fail("single_label",
                    $"Classification needs at least two label classes; every example is labelled \"{labels[0]}\".", null);
            return DatasetParseResult.Ok(_examples, labels, _count, HasTextPairs);
        }

        private void Line(ReadOnlySpan<byte> line)
        {
            _lineNumber++;
            var lineNumber = _lineNumber;
            if (line.EndsWith("\r"u8))
                line = line[..^1];
            if (IsBlank(line))
                return;

            // System.Text.Json does not validate UTF-8 inside strings until it transcodes them, and then throws.
            if (!Utf8.IsValid(line))
            {
                _failure = DatasetParseResult.Fail("invalid_encoding", $"Line {lineNumber}: not valid UTF-8 (save the file as UTF-8).", lineNumber);
                return;
            }
            var error = TryParseLine(line, lineNumber, out var example, out var kind);
            if (error is not null)
            {
                _failure = DatasetParseResult.Fail(error.Value.Code, error.Value.Message, lineNumber);
                return;
            }
            _labelKind ??= kind;
            if (KindName(kind) != KindName(_labelKind.Value))
            {
                _failure = DatasetParseResult.Fail("mixed_label_types",
                    $"Line {lineNumber}: the label is a {KindName(kind)} but earlier labels are {KindName(_labelKind.Value)}s; use one JSON type for every label.",
                    lineNumber);
                return;
            }
            _count++;
            _labels.Add(example!.Label);
            HasTextPairs |= example.TextPair is not null;
            if (keepExamples)
                _examples.Add(example);
        }
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
