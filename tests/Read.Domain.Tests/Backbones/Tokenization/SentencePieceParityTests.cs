using Read.Domain.Backbones.Tokenization;

namespace Read.Domain.Tests.Backbones.Tokenization;

/// <summary>
/// The two file kinds of a Llama-2-style checkpoint agree: tokenizer.model (a SentencePiece BPE ModelProto, run by
/// Microsoft.ML.Tokenizers) and the tokenizer.json transformers converts from it (BPE with "▁" and byte fallback, run
/// by Hugging Face tokenizers) give identical ids, with the same defaults (BOS added, no EOS).
/// </summary>
public sealed class SentencePieceParityTests : IDisposable
{
    // Merged pieces first (highest scores), then single characters, as in Llama's vocabulary.
    private static readonly string[] Pieces =
    [
        "▁t", "he", "▁the", "in", "▁a", "an", "er", "▁w", "or", "ld", "▁wor", "▁world", "ll", "▁he", "▁hell", "▁hello",
        "at", "▁th", "▁wh", "▁s", "on", "en", "ing", "▁c", "▁in", "▁an", "▁and", "es", "▁o", "▁of", "it", "is", "▁is",
        "▁", "a", "b", "c", "d", "e", "f", "g", "h", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u", "w", "y",
    ];

    private static readonly string[] Samples =
    [
        "hello world",
        "the weather is nice and the world is big",
        "Hello World",
        "in the beginning",
        "thinking of cats",
        "naïve café",
        "emoji 🙂 here",
        "中文",
        "  two leading spaces",
        "tabs\tand\nnewlines",
        "zzz qqq xyz",
        "",
    ];

    private readonly TempDirectory model = new();
    private readonly TempDirectory json = new();
    private readonly TempDirectory metaspace = new();
    private readonly TokenizerTestFiles.SentencePieceVocab vocab = TokenizerTestFiles.SentencePieceVocab.Create(Pieces);

    public SentencePieceParityTests()
    {
        TokenizerTestFiles.WriteSentencePieceModel(model.Sub("tokenizer.model"), vocab);
        TokenizerTestFiles.WriteLlama2TokenizerJson(json.Sub("tokenizer.json"), vocab);
        TokenizerTestFiles.WriteLlama2TokenizerJson(metaspace.Sub("tokenizer.json"), vocab, metaspace: true);
    }

    public static TheoryData<string> Texts => new(Samples);

    /// <summary>Texts that do not start with whitespace: the newer Metaspace form agrees with SentencePiece on them.</summary>
    public static TheoryData<string> TextsWithoutLeadingSpace => new(Samples.Where(s => s.Length == 0 || !char.IsWhiteSpace(s[0])));

    [Theory]
    [MemberData(nameof(Texts))]
    public void TokenizerModel_And_LegacyTokenizerJson_GiveEqualIds(string text)
    {
        using var fromModel = DecoderTokenizer.Load(model.Path);
        using var fromJson = DecoderTokenizer.Load(json.Path);
        Assert.Equal("tokenizer.model", fromModel.Kind);
        Assert.Equal("tokenizer.json", fromJson.Kind);
        Assert.Equal(fromJson.EncodeText(text), fromModel.EncodeText(text));
        Assert.Equal(fromJson.EncodeExample(text, null, 64), fromModel.EncodeExample(text, null, 64));
    }

    [Theory]
    [MemberData(nameof(TextsWithoutLeadingSpace))]
    public void TokenizerModel_And_MetaspaceTokenizerJson_GiveEqualIds(string text)
    {
        using var fromModel = DecoderTokenizer.Load(model.Path);
        using var fromJson = DecoderTokenizer.Load(metaspace.Path);
        Assert.Equal(fromJson.EncodeText(text), fromModel.EncodeText(text));
    }

    [Fact]
    public void MetaspaceTokenizerJson_AddsNoPrefixBeforeALeadingSpace()
    {
        // The documented difference: Hugging Face's Metaspace (prepend_scheme "first") prepends "▁" only when the text
        // does not already start with one, SentencePiece always adds its dummy prefix. So "  two" through
        // tokenizer.json reads as " two" through tokenizer.model.
        using var fromModel = DecoderTokenizer.Load(model.Path);
        using var fromJson = DecoderTokenizer.Load(metaspace.Path);
        Assert.Equal(fromModel.EncodeText(" two leading spaces"), fromJson.EncodeText("  two leading spaces"));
        Assert.NotEqual(fromModel.EncodeText("  two leading spaces"), fromJson.EncodeText("  two leading spaces"));
    }

    [Fact]
    public void TokenizerModel_RecognisesSpecialTokensInText()
    {
        using var fromModel = DecoderTokenizer.Load(model.Path);
        using var fromJson = DecoderTokenizer.Load(json.Path);
        var ids = fromModel.EncodeText("hello</s>world");
        Assert.Equal([vocab.IdOf("▁hello"), 2], ids[..2]);
        Assert.Equal(2, fromJson.EncodeText("hello</s>world")[1]);
    }

    [Fact]
    public void TokenizerModel_UsesThePiecesAndByteFallback()
    {
        using var tokenizer = DecoderTokenizer.Load(model.Path);
        // By construction: "▁hello" and "▁world" are whole pieces; "H" is not in the vocabulary, so it falls back to
        // its byte <0x48>, then "ello" is merged from characters.
        Assert.Equal([vocab.IdOf("▁hello"), vocab.IdOf("▁world")], tokenizer.EncodeText("hello world"));
        var capital = tokenizer.EncodeText("Hello");
        Assert.Equal(vocab.IdOf("▁"), capital[0]);
        Assert.Equal(vocab.IdOf("<0x48>"), capital[1]);
        Assert.Equal(vocab.IdOf("e"), capital[2]);
        Assert.Equal(vocab.IdOf("ll"), capital[3]);
        Assert.Equal(vocab.IdOf("o"), capital[4]);
    }

    [Fact]
    public void TokenizerModel_HasLlamaDefaults()
    {
        using var tokenizer = DecoderTokenizer.Load(model.Path);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal(2, tokenizer.PadTokenId);
        Assert.Equal(vocab.Pieces.Count, tokenizer.VocabularySize);
        Assert.Equal([1, vocab.IdOf("▁hello")], tokenizer.EncodeExample("hello", null, 16));
    }

    [Fact]
    public void TokenizerJson_TemplateBos_GivesTheSameDefaults()
    {
        using var tokenizer = DecoderTokenizer.Load(json.Path);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.True(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal(vocab.Pieces.Count, tokenizer.VocabularySize);
    }

    [Fact]
    public void BothFiles_TokenizerJsonWins_AndKindsFingerprintDiffer()
    {
        using var both = new TempDirectory();
        File.Copy(model.Sub("tokenizer.model"), both.Sub("tokenizer.model"));
        File.Copy(json.Sub("tokenizer.json"), both.Sub("tokenizer.json"));
        using var tokenizer = DecoderTokenizer.Load(both.Path);
        using var fromModel = DecoderTokenizer.Load(model.Path);
        Assert.Equal("tokenizer.json", tokenizer.Kind);
        Assert.NotEqual(fromModel.Fingerprint, tokenizer.Fingerprint);
    }

    public void Dispose()
    {
        model.Dispose();
        json.Dispose();
        metaspace.Dispose();
    }
}
