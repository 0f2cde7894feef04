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
    [property: JsonPropertyName("tokenize_chinese_chars")] bool? TokenizeChineseChars = null)
{
    public static AdapterTokenizerConfig From(TokenizerSettings settings) =>
        new(settings.LowerCase, StripAccents: settings.StripAccents, TokenizeChineseChars: settings.TokenizeChineseChars);

    /// <summary>The settings to encode prediction inputs with: exactly those of training.</summary>
    [JsonIgnore]
    public TokenizerSettings Settings
    {
        get
        {
            var legacy = TokenizerSettings.Legacy(DoLowerCase);
            return new TokenizerSettings(DoLowerCase, StripAccents ?? legacy.StripAccents, TokenizeChineseChars ?? legacy.TokenizeChineseChars);
        }
    }
}
