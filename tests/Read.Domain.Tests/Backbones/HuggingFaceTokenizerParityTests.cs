using System.Text;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using TorchSharp;
using HfTokenizer = Tokenizers.DotNet.Tokenizer;

namespace Read.Domain.Tests.Backbones;

/// <summary>
/// Our WordPiece ids against Hugging Face tokenizers (the Rust library, through Tokenizers.DotNet) on the real
/// all-MiniLM-L6-v2 vocabulary. The reference is configured exactly as transformers' BertTokenizerFast converts an
/// uncased BERT vocab.txt (BertNormalizer with strip_accents following lowercase, BertPreTokenizer, WordPiece with
/// "##" and 100 characters per word). Tolerance: ids must be identical.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class HuggingFaceTokenizerParityTests(MiniLmFixture fixture) : IDisposable
{
    // Accents (precomposed and already decomposed), emoji, CJK, other scripts, newlines, tabs and control characters.
    private static readonly string[] Samples =
    [
        "This is an example sentence",
        "café crème brûlée à la carte",
        "Ñandú über naïve façade résumé",
        "cafe\u0301 decomposed accent",
        "ÉCOLE ÀÉÎÕÜ Ångström",
        "I love it 🙂🔥 so much 👍🏽",
        "我爱北京天安门",
        "日本語のテキストと English mixed",
        "한국어 텍스트",
        "Ελληνικά и русский текст",
        "first line\nsecond line\r\nthird\tcolumn",
        "bell\u0007 and null-free control\u001f chars",
        "don't stop-believing... (really?) $100 & 50%",
        "supercalifragilisticexpialidocious antidisestablishmentarianism",
        string.Concat(Enumerable.Repeat("x", 120)) + " long word",
        "question [SEP] answer[MASK]ed [cls] [UNK]",
        "replacement \ufffd character",
    ];

    public static TheoryData<string> Texts => new(Samples);

    private readonly TempDirectory directory = new();

    private HfTokenizer Reference()
    {
        var path = directory.Sub("tokenizer.json");
        if (!File.Exists(path))
            File.WriteAllText(path, BertTokenizerJson(fixture.Vocabulary));
        return new HfTokenizer(path);
    }

    [Theory]
    [MemberData(nameof(Texts))]
    public void Encode_MatchesHuggingFaceTokenizers(string text)
    {
        using var reference = Reference();
        var expected = reference.Encode(text).Select(id => (long)id).ToArray();

        using var batch = fixture.Backbone.Encode([text], null, 512);
        var actual = batch.InputIds.data<long>().ToArray();

        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Encode_NewlineJoinedTexts_MatchHuggingFaceTokenizers()
    {
        var joined = string.Join("\n", Samples);
        using var reference = Reference();
        var expected = reference.Encode(joined).Select(id => (long)id).ToArray();

        using var batch = fixture.Backbone.Encode([joined], null, 512);

        Assert.Equal(expected, batch.InputIds.data<long>().ToArray());
    }

    [Fact]
    public void Encode_LoneSurrogate_IsDroppedAsAReplacementCharacter()
    {
        // Hugging Face never sees ill-formed UTF-16 (Rust strings cannot hold it); BERT cleaning drops U+FFFD.
        using var broken = fixture.Backbone.Encode(["lone \ud800 surrogate"], null, 32);
        using var clean = fixture.Backbone.Encode(["lone surrogate"], null, 32);
        Assert.Equal(clean.InputIds.data<long>().ToArray(), broken.InputIds.data<long>().ToArray());
    }

    [Fact]
    public void Checkpoint_UncasedWithoutStripAccents_DefaultsToStrippingAsHuggingFaceDoes()
    {
        Assert.Equal(new TokenizerSettings(LowerCase: true, StripAccents: true, TokenizeChineseChars: true), fixture.Backbone.TokenizerSettings);
    }

    [Fact]
    public void Encode_LegacySettings_KeepAccentsAndGiveOtherIds()
    {
        // What adapters trained before the fix saw: "café" is not "cafe".
        using var current = fixture.Backbone.Encode(["café"], null, 32);
        using var legacy = fixture.Backbone.Encode(["café"], null, 32, TokenizerSettings.Legacy(lowerCase: true));
        using var plain = fixture.Backbone.Encode(["cafe"], null, 32);

        Assert.Equal(plain.InputIds.data<long>().ToArray(), current.InputIds.data<long>().ToArray());
        Assert.NotEqual(plain.InputIds.data<long>().ToArray(), legacy.InputIds.data<long>().ToArray());
    }

    public void Dispose() => directory.Dispose();

    /// <summary>tokenizer.json as transformers writes it for an uncased BERT vocab.txt.</summary>
    private static string BertTokenizerJson(byte[] vocabularyBytes)
    {
        var tokens = Encoding.UTF8.GetString(vocabularyBytes).Split('\n').Select(l => l.TrimEnd('\r')).Where(l => l.Length > 0).ToList();
        var vocab = new JsonObject();
        for (var i = 0; i < tokens.Count; i++)
            vocab[tokens[i]] = i;
        int Id(string token) => tokens.IndexOf(token);

        JsonObject Special(string token, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = typeId } };
        JsonObject Sequence(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        JsonObject SpecialEntry(string token) => new() { ["id"] = token, ["ids"] = new JsonArray(Id(token)), ["tokens"] = new JsonArray(token) };

        var added = new JsonArray();
        foreach (var token in new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" })
        {
            added.Add(new JsonObject
            {
                ["id"] = Id(token), ["content"] = token, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
                ["normalized"] = false, ["special"] = true,
            });
        }

        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null, ["lowercase"] = true,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0)),
                ["pair"] = new JsonArray(Special("[CLS]", 0), Sequence("A", 0), Special("[SEP]", 0), Sequence("B", 1), Special("[SEP]", 1)),
                ["special_tokens"] = new JsonObject { ["[CLS]"] = SpecialEntry("[CLS]"), ["[SEP]"] = SpecialEntry("[SEP]") },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##", ["max_input_chars_per_word"] = 100,
                ["vocab"] = vocab,
            },
        }.ToJsonString();
    }
}
