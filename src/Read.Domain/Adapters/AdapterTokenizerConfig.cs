using System.Text.Json.Serialization;
using Read.Domain.Backbones;

namespace Read.Domain.Adapters;

/// <summary>
/// How inputs were tokenized when the adapter was trained. strip_accents and tokenize_chinese_chars are absent from
/// adapters published before they were recorded; those load with the settings they were trained with
/// (<see cref="TokenizerSettings.Legacy"/>).
/// </summary>
public sealed record AdapterTokenizerConfig(
    [property: JsonPropertyName("do_lower_case")] bool DoLowerCase,
    [property: JsonPropertyName("padding")] string Padding = "longest",
    [property: JsonPropertyName("truncation")] string Truncation = "longest_first",
    [property: JsonPropertyName("type")] string Type = "wordpiece",
    [property: JsonPropertyName("strip_accents")] bool? StripAccents = null,
    [property: JsonPropertyName("tokenize_chinese_chars")] bool? TokenizeChineseChars = null,
    // Decoder tokenizers (type tokenizer.json / tokenizer.model): sha256 of their files and id-changing settings.
    [property: JsonPropertyName("fingerprint")] string? Fingerprint = null)
{
    public static AdapterTokenizerConfig From(TokenizerSettings settings) => settings.Kind == TokenizerSettings.WordPieceKind
        ? new(settings.LowerCase, StripAccents: settings.StripAccents, TokenizeChineseChars: settings.TokenizeChineseChars)
        : new(false, Type: settings.Kind, Fingerprint: settings.Fingerprint);

    /// <summary>The settings to encode prediction inputs with: exactly those of training.</summary>
    [JsonIgnore]
    public TokenizerSettings Settings
    {
        get
        {
            if (Type != TokenizerSettings.WordPieceKind)
                return TokenizerSettings.Fingerprinted(Type, Fingerprint ?? "");
            var legacy = TokenizerSettings.Legacy(DoLowerCase);
            return new TokenizerSettings(DoLowerCase, StripAccents ?? legacy.StripAccents, TokenizeChineseChars ?? legacy.TokenizeChineseChars);
        }
    }
}
