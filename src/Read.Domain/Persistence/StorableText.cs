namespace Read.Domain.Persistence;

/// <summary>
/// Text that both database providers store unchanged. Postgres text cannot hold NUL (error 22021) and its UTF-8
/// encoding cannot hold an unpaired surrogate; SQLite would store either, so both are refused at the edge, on both.
/// </summary>
public static class StorableText
{
    /// <summary>Index of the first character that cannot be stored, or -1 when every character can.</summary>
    public static int FirstInvalidIndex(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\0')
                return i;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                i++;
            else if (char.IsSurrogate(c))
                return i;
        }

        return -1;
    }

    public static bool IsValid(string? text) => text is null || FirstInvalidIndex(text) < 0;
}
