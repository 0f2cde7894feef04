using Microsoft.ML.Tokenizers;
using Read.Domain.Backbones.Tokenization;

namespace Read.Domain.Tests.Backbones.Tokenization;

/// <summary>The GPT-2 tokenizer.json, rebuilt once from the real gpt2.tiktoken ranks, loaded by DecoderTokenizer.</summary>
public sealed class Gpt2TokenizerFixture : IDisposable
{
    private readonly TempDirectory directory = new();

    public Gpt2TokenizerFixture()
    {
        TokenizerTestFiles.WriteGpt2TokenizerJson(directory.Sub("tokenizer.json"));
        // GPT-2's config.json: bos_token_id = eos_token_id = 50256, no pad token.
        Tokenizer = DecoderTokenizer.Load(directory.Path, configBosTokenId: 50256, configEosTokenId: 50256);
        Reference = TiktokenTokenizer.CreateForModel("gpt2");
    }

    public string Directory => directory.Path;

    public DecoderTokenizer Tokenizer { get; }

    /// <summary>Microsoft.ML.Tokenizers' own GPT-2 tokenizer (tiktoken ranks and GPT-2's regex): the reference.</summary>
    public TiktokenTokenizer Reference { get; }

    public void Dispose()
    {
        Tokenizer.Dispose();
        directory.Dispose();
    }
}

/// <summary>
/// Byte-level BPE parity on real data: Hugging Face tokenizers (through DecoderTokenizer) on a GPT-2 tokenizer.json
/// rebuilt from the gpt2.tiktoken ranks, against Microsoft.ML.Tokenizers' Tiktoken GPT-2 tokenizer on the same texts.
/// Tolerance: identical ids.
/// </summary>
public sealed class Gpt2ByteLevelParityTests(Gpt2TokenizerFixture fixture) : IClassFixture<Gpt2TokenizerFixture>
{
    private static readonly string[] Samples =
    [
        "Hello world",
        "The quick brown fox jumps over the lazy dog.",
        "café crème brûlée à la carte",
        "cafe\u0301 decomposed accent and n\u0303 tilde",
        "Ñandú über naïve façade résumé ÉCOLE Ångström",
        "I love it 🙂🔥 so much 👍🏽",
        "family 👨‍👩‍👧‍👦 and flag 🏳️‍🌈 ZWJ sequences",
        "我爱北京天安门",
        "日本語のテキストと English mixed",
        "한국어 텍스트 입니다",
        "Ελληνικά и русский текст",
        "first line\nsecond line\r\nthird\tcolumn",
        "trailing spaces   \n\n\n  indented\t\ttabs",
        "multiple     spaces    between   words",
        "   leading spaces",
        "numbers 1234567890 3.14159 -42 1,000,000 2nd",
        "don't I'll we're they've she'd it's I'm",
        "DON'T SHOUT 'quoted' words",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis" + string.Concat(Enumerable.Repeat("x", 200)),
        "code: def f(x):\n    return x ** 2  # square",
        "punctuation!!! ??? ... --- (brackets) [more] {braces} <tags>",
        "replacement \ufffd character and nbsp\u00a0here",
        "ideographic\u3000space, line\u2028separator, next\u0085line, vt\u000bff\u000c",
        "superscript² ½ ٣٤ Ⅻ ＡＢＣ fullwidth",
        "zero\u200bwidth and curly you’re and mixed'S 'LL 'Ve",
        "e\u0301\u0301\u0301 stacked marks 🙂🙂🙂🙂",
        "\r\r\n\n\r",
        "end with spaces   ",
        "with an <|endoftext|> special token inside",
        "",
        " ",
    ];

    public static TheoryData<string> Texts => new(Samples);

    [Fact]
    public void RebuiltFile_HasGpt2sVocabulary()
    {
        // GPT-2: 50,257 tokens, <|endoftext|> = 50256 (published sizes of the gpt2 checkpoint).
        Assert.Equal(50257, fixture.Tokenizer.VocabularySize);
        Assert.Equal("tokenizer.json", fixture.Tokenizer.Kind);
        Assert.Equal(50256, fixture.Tokenizer.EosTokenId);
        Assert.Equal(50256, fixture.Tokenizer.PadTokenId);
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void EncodeText_MatchesTiktokenGpt2(string text)
    {
        var expected = fixture.Reference.EncodeToIds(text).ToArray();
        Assert.Equal(expected, fixture.Tokenizer.EncodeText(text));
    }

    [Fact]
    public void EncodeText_AllSamplesJoined_MatchesTiktokenGpt2()
    {
        var joined = string.Join("\n", Samples);
        Assert.Equal(fixture.Reference.EncodeToIds(joined).ToArray(), fixture.Tokenizer.EncodeText(joined));
    }

    [Fact]
    public void EncodeText_GivesTheWellKnownGpt2Ids()
    {
        // Published GPT-2 ids ("Hello" 15496, " world" 995), independent of both libraries.
        Assert.Equal([15496, 995], fixture.Tokenizer.EncodeText("Hello world"));
    }

    [Fact]
    public void EncodeText_GptPostProcessorAddsNothing()
    {
        // GPT-2's post-processor is ByteLevel (offsets only): no BOS by default, and EncodeExample adds nothing either.
        Assert.False(fixture.Tokenizer.AddBosToken);
        Assert.False(fixture.Tokenizer.AddEosToken);
        Assert.Equal(fixture.Reference.EncodeToIds("Hello world").ToArray(), fixture.Tokenizer.EncodeExample("Hello world", null, 64));
    }

    [Fact]
    public void EncodeText_FromManyThreads_MatchesSequential()
    {
        var expected = Samples.Select(s => fixture.Reference.EncodeToIds(s).ToArray()).ToArray();
        var results = new int[Samples.Length * 20][];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 },
            i => results[i] = fixture.Tokenizer.EncodeText(Samples[i % Samples.Length]));
        for (var i = 0; i < results.Length; i++)
            Assert.Equal(expected[i % Samples.Length], results[i]);
    }

    [Fact]
    public void EncodeText_LoneSurrogate_ReadsAsReplacementCharacter()
    {
        // Hugging Face tokenizers throws on invalid UTF-16; we read a lone surrogate as U+FFFD, as UTF-8 encoding (and
        // so the reference) does.
        Assert.Equal(fixture.Reference.EncodeToIds("lone \ufffd surrogate").ToArray(), fixture.Tokenizer.EncodeText("lone \ud800 surrogate"));
        Assert.Equal(fixture.Reference.EncodeToIds("\ufffdend").ToArray(), fixture.Tokenizer.EncodeText("\udc00end"));
        Assert.Equal(fixture.Reference.EncodeToIds("🙂\ufffd").ToArray(), fixture.Tokenizer.EncodeText("🙂\ud83d"));
    }

    [Fact]
    public void EncodeText_Null_IsEmpty() => Assert.Empty(fixture.Tokenizer.EncodeText(null));
}
