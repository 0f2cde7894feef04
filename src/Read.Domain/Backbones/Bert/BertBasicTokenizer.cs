using System.Globalization;
using System.Text;

namespace Read.Domain.Backbones.Bert;

/// <summary>
/// BERT's basic tokenization: the text cleaning, CJK splitting, accent stripping, lower-casing and whitespace and
/// punctuation split that Hugging Face's BertNormalizer and BertPreTokenizer apply before WordPiece.
/// Microsoft.ML.Tokenizers' own basic step differs from it on real text (it keeps "\n" inside words, drops emoji and
/// "$" instead of mapping them to [UNK] or splitting them off, and does not decompose Hangul), so WordPiece only
/// sees the words this class produces; HuggingFaceTokenizerParityTests holds the two to the same ids.
/// </summary>
internal static class BertBasicTokenizer
{
    /// <summary>The words of <paramref name="text"/>, in order, joined by single spaces (WordPiece splits on them).</summary>
    public static string Words(string text, TokenizerSettings settings)
    {
        var cleaned = new StringBuilder(text.Length + 16);
        // Ill-formed UTF-16 (a lone surrogate) enumerates as U+FFFD, which cleaning drops.
        foreach (var rune in text.EnumerateRunes())
        {
            // clean_text: drop NUL, U+FFFD and control characters; every kind of whitespace becomes a space.
            if (rune.Value == 0 || rune.Value == 0xFFFD || IsControl(rune))
                continue;
            if (IsWhitespace(rune))
                cleaned.Append(' ');
            else if (settings.TokenizeChineseChars && IsCjkIdeograph(rune.Value))
                cleaned.Append(' ').Append(rune.ToString()).Append(' ');
            else
                cleaned.Append(rune.ToString());
        }

        var normalized = cleaned.ToString();
        if (settings.StripAccents)
            normalized = StripAccents(normalized);
        if (settings.LowerCase)
            normalized = normalized.ToLowerInvariant();

        var words = new StringBuilder(normalized.Length + 16);
        foreach (var rune in normalized.EnumerateRunes())
        {
            if (rune.Value == ' ')
                words.Append(' ');
            else if (IsPunctuation(rune))
                words.Append(' ').Append(rune.ToString()).Append(' ');
            else
                words.Append(rune.ToString());
        }

        return words.ToString();
    }

    /// <summary>
    /// Whether the words of <c>text[..index]</c> are the first words of <paramref name="text"/>: the character at
    /// <paramref name="index"/> is whitespace that cleaning keeps (a space to split on), or a CJK ideograph split off on
    /// its own. Nothing before it can join anything after it (NFD and lower-casing work character by character, and a
    /// space or ideograph is never a combining mark), so a long text can be tokenized from such a prefix.
    /// </summary>
    public static bool IsWordStart(string text, int index, TokenizerSettings settings)
    {
        if (!Rune.TryGetRuneAt(text, index, out var rune))
            return false; // a lone surrogate: cleaning drops it, so it splits nothing
        return (IsWhitespace(rune) && !IsControl(rune)) || (settings.TokenizeChineseChars && IsCjkIdeograph(rune.Value));
    }

    // NFD, then drop non-spacing marks: "é" (U+00E9) is "e" + U+0301, and the mark goes.
    private static string StripAccents(string text)
    {
        var decomposed = text.Normalize(NormalizationForm.FormD);
        var kept = new StringBuilder(decomposed.Length);
        foreach (var rune in decomposed.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark)
                kept.Append(rune.ToString());
        }

        return kept.ToString();
    }

    private static bool IsWhitespace(Rune rune) =>
        rune.Value is ' ' or '\t' or '\n' or '\r' || Rune.IsWhiteSpace(rune);

    // Tab, newline and carriage return count as whitespace, not control; every other "other" category is dropped.
    private static bool IsControl(Rune rune)
    {
        if (rune.Value is '\t' or '\n' or '\r')
            return false;
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned or UnicodeCategory.Surrogate;
    }

    // ASCII symbols such as "$", "+" and "^" are punctuation for BERT although Unicode calls them symbols.
    private static bool IsPunctuation(Rune rune)
    {
        var c = rune.Value;
        if (c is >= 33 and <= 47 or >= 58 and <= 64 or >= 91 and <= 96 or >= 123 and <= 126)
            return true;
        return Rune.GetUnicodeCategory(rune) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;
    }

    // The CJK Unified Ideographs blocks BERT splits into single characters (not Hangul, Hiragana or Katakana).
    private static bool IsCjkIdeograph(int c) =>
        c is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B820 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
