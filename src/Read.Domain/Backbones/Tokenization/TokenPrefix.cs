namespace Read.Domain.Backbones.Tokenization;

/// <summary>
/// Tokenizes only as much of a long text as truncation can keep. Truncation keeps a prefix of a text's tokens (at most
/// the sequence's budget of them, longest-first for pairs, whose outcome depends only on each side's length capped at
/// the budget), so a text far longer than that needs only its first tokens. They are read from a prefix of the text cut
/// where the tokenizer itself splits words (the caller's <c>isCut</c>): there the tokens of the prefix are exactly the
/// first tokens of the whole text. The prefix grows until it yields enough tokens; with no cut in sight (a long text
/// without whitespace) the whole text is tokenized, as before.
/// </summary>
internal static class TokenPrefix
{
    // A first guess of characters per token wanted: English WordPiece and BPE tokens average 4–5 characters.
    private const int CharsPerToken = 8;
    private const int MinChars = 256;

    /// <summary>
    /// Ids whose first min(<paramref name="tokens"/>, all) equal those of <c>encode(text)</c> (there may be more).
    /// <paramref name="isCut"/>(text, i) says that the tokens of <c>text[..i]</c> are a prefix of those of the text.
    /// </summary>
    public static T Encode<T>(string text, int tokens, Func<string, T> encode, Func<string, int, bool> isCut)
        where T : System.Collections.ICollection
    {
        var length = Math.Max(MinChars, tokens * CharsPerToken);
        var searchedFrom = 0; // cuts below this index were tried already (or there were none)
        while (length < text.Length)
        {
            var cut = LastCut(text, length, searchedFrom, isCut);
            if (cut > 0)
            {
                var ids = encode(text[..cut]);
                if (ids.Count >= tokens)
                    return ids;
            }

            searchedFrom = cut > 0 ? cut : length; // a longer prefix must end at a later cut
            length = length > text.Length / 2 ? text.Length : length * 2;
        }

        return encode(text);
    }

    // The last cut in (from, length], scanning back from length; -1 if none. Each scan starts where the last one found
    // nothing more, so a text is scanned about twice in all.
    private static int LastCut(string text, int length, int from, Func<string, int, bool> isCut)
    {
        for (var i = length; i > from; i--)
        {
            if (isCut(text, i))
                return i;
        }

        return -1;
    }
}
