using System.Text.Json.Nodes;

namespace Read.Domain.Backbones;

/// <summary>
/// Everything about a tokenizer that changes token ids: for BERT's WordPiece the switches of its basic tokenizer; for
/// other tokenizers (<see cref="Kind"/>) a fingerprint of their files and settings. They travel with the
/// activation-cache key and the adapter config, so a change here never reuses a cache or adapter built with other ids.
/// </summary>
/// <param name="LowerCase">Lower-case text before WordPiece (do_lower_case).</param>
/// <param name="StripAccents">NFD-decompose and drop combining marks ("café" → "cafe"); Hugging Face's default follows
/// <paramref name="LowerCase"/> when a checkpoint leaves strip_accents unset.</param>
/// <param name="TokenizeChineseChars">Split CJK ideographs into single-character words (tokenize_chinese_chars).</param>
/// <param name="Kind">"wordpiece" (BERT), or the file a decoder's tokenizer comes from ("tokenizer.json", "tokenizer.model").</param>
/// <param name="Fingerprint">For kinds other than wordpiece: sha256 of the tokenizer files and every id-changing setting.</param>
public sealed record TokenizerSettings(bool LowerCase, bool StripAccents, bool TokenizeChineseChars, string Kind = TokenizerSettings.WordPieceKind, string? Fingerprint = null)
{
    public const string WordPieceKind = "wordpiece";

    /// <summary>A decoder tokenizer: nothing to switch, identified by its fingerprint.</summary>
    public static TokenizerSettings Fingerprinted(string kind, string fingerprint) => new(false, false, false, kind, fingerprint);

    /// <summary>
    /// What Read used before accents were stripped (adapters and caches without the strip_accents field): accents
    /// kept, CJK split. Old adapters keep predicting with the ids they were trained on.
    /// </summary>
    public static TokenizerSettings Legacy(bool lowerCase) => new(lowerCase, false, true);

    /// <summary>One line for logs, cache keys and headers.</summary>
    public override string ToString() => Kind == WordPieceKind
        ? $"do_lower_case={LowerCase} strip_accents={StripAccents} tokenize_chinese_chars={TokenizeChineseChars}"
        : $"tokenizer={Kind} fingerprint={Fingerprint}";

    /// <summary>
    /// The settings a Hugging Face checkpoint declares: tokenizer_config.json first (what BertTokenizer reads), then
    /// tokenizer.json's BertNormalizer (what BertTokenizerFast reads), then Hugging Face's defaults.
    /// </summary>
    internal static TokenizerSettings FromCheckpoint(JsonNode? tokenizerConfig, JsonNode? tokenizerJson)
    {
        var normalizer = tokenizerJson?["normalizer"];
        if (normalizer?["type"]?.GetValue<string>() != "BertNormalizer")
            normalizer = null;
        var lowerCase = Setting(tokenizerConfig, "do_lower_case", normalizer, "lowercase") ?? true;
        // null means "follow lowercase" in both files, as in transformers' BasicTokenizer.
        var stripAccents = Setting(tokenizerConfig, "strip_accents", normalizer, "strip_accents") ?? lowerCase;
        var chinese = Setting(tokenizerConfig, "tokenize_chinese_chars", normalizer, "handle_chinese_chars") ?? true;
        return new TokenizerSettings(lowerCase, stripAccents, chinese);
    }

    // A key present in tokenizer_config.json wins even when null: transformers rebuilds the fast normalizer from it.
    private static bool? Setting(JsonNode? tokenizerConfig, string configKey, JsonNode? normalizer, string normalizerKey)
    {
        if (tokenizerConfig is JsonObject config && config.TryGetPropertyValue(configKey, out var value))
            return Flag(value);
        return normalizer is JsonObject n && n.TryGetPropertyValue(normalizerKey, out var fromNormalizer) ? Flag(fromNormalizer) : null;
    }

    private static bool? Flag(JsonNode? node)
    {
        if (node is not JsonValue value)
            return null;
        if (value.TryGetValue<bool>(out var flag))
            return flag;
        throw new InvalidDataException($"tokenizer setting '{node.GetPropertyName()}' must be true, false or null, not {node.ToJsonString()}.");
    }
}
