using System.Text;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
using Read.Domain.Backbones.Tokenization;

namespace Read.Domain.Tests.Backbones.Tokenization;

/// <summary>
/// Long texts and pairs whose ids come from a prefix of the text (<see cref="TokenPrefix"/>) against the whole text
/// tokenized, then truncated longest-first by the test's own loop (the pair's last token on a tie, as Hugging Face and
/// the tokenizers' documentation say). Tolerance: identical ids.
/// </summary>
internal static class LongTexts
{
    private static readonly string[] Words =
    [
        "the", "quick", "brown", "fox", "café", "crème", "brûlée", "naïve", "Ångström", "ÉCOLE", "résumé", "façade",
        "supercalifragilisticexpialidocious", "antidisestablishmentarianism", "don't", "it's", "(really?)", "$100", "50%",
        "3.14159", "1,000,000", "🙂🔥", "👍🏽", "我爱", "北京", "日本語の", "한국어", "Ελληνικά", "русский", "[SEP]", "[MASK]ed",
        "q[CLS]a", "<|endoftext|>", "cafe\u0301", "n\u0303o", "bell\u0007", "zero\u200bwidth", new string('x', 120),
        "word.", "end!", "--", "...",
    ];

    // Every kind of gap the tokenizers treat differently: spaces and runs of them, tabs and newlines, no-break and
    // ideographic spaces, NEL (a control BERT drops, so not a word break), a combining mark after a space, none at all.
    private static readonly string[] Gaps = [" ", " ", " ", "  ", "\t", "\n", "\r\n", " \n\n ", "\u00a0", "\u3000", "\u0085", " \u0301", ""];

    public static string Mixed(int seed, int chars)
    {
        var random = new Random(seed);
        var text = new StringBuilder(chars + 200);
        while (text.Length < chars)
            text.Append(Words[random.Next(Words.Length)]).Append(Gaps[random.Next(Gaps.Length)]);
        return text.ToString();
    }

    /// <summary>Chinese without whitespace: BERT splits every ideograph off, a decoder has no space to cut at.</summary>
    public static string Chinese(int chars) => string.Concat(Enumerable.Repeat("我爱北京天安门，天安门上太阳升。", chars / 16 + 1))[..chars];

    /// <summary>Kana without whitespace or ideographs: no cut for either tokenizer, so the whole text is read.</summary>
    public static string Kana(int chars) => string.Concat(Enumerable.Repeat("ひらがなとカタカナのぶんしょうです", chars / 17 + 1))[..chars];

    /// <summary>A long run with no cut in it, then words: the first prefixes have no cut and must grow past it.</summary>
    public static string LongRunThenWords(int seed) => string.Concat(Enumerable.Repeat("abcdefghij", 600)) + " " + Mixed(seed, 20_000);

    /// <summary>Words of 120 letters, one [UNK] each in WordPiece: the first prefix yields too few tokens.</summary>
    public static string FewTokensPerChar(int seed)
    {
        var random = new Random(seed);
        return string.Join(" ", Enumerable.Range(0, 400).Select(_ => new string((char)('a' + random.Next(26)), 120)));
    }

    public static IEnumerable<(string Text, string? Pair)> Cases()
    {
        string[] longs = [Mixed(1, 30_000), Chinese(20_000), Kana(20_000), LongRunThenWords(2), FewTokensPerChar(3), Mixed(4, 1_500)];
        string[] shorts = ["a short question?", "", " leading space and trailing ", "数"];
        foreach (var text in longs)
        {
            yield return (text, null);
            foreach (var pair in longs.Take(3).Concat(shorts))
                yield return (text, pair);
        }

        foreach (var text in shorts)
        {
            yield return (text, null);
            foreach (var pair in longs)
                yield return (text, pair);
        }
    }

    /// <summary>Texts with every gap and word kind close together, so every kind of cut is tried.</summary>
    public static IEnumerable<string> ShortMixes() => [Mixed(11, 2_000), Mixed(12, 2_000), Mixed(13, 2_000), Chinese(300) + " " + Mixed(14, 300)];

    /// <summary>
    /// The property a prefix relies on, at every cut: the ids of the text before it are the first ids of the whole
    /// text. (Comparing truncated long texts alone would rarely notice a wrong cut: a prefix usually has ids to spare.)
    /// </summary>
    public static void AssertEveryCutGivesAPrefix<T>(string text, Func<string, T[]> ids, Func<string, int, bool> isCut)
    {
        var whole = ids(text);
        var cuts = 0;
        for (var i = 1; i < text.Length; i++)
        {
            if (!isCut(text, i))
                continue;
            cuts++;
            var prefix = ids(text[..i]);
            Assert.True(prefix.Length <= whole.Length && prefix.SequenceEqual(whole[..prefix.Length]),
                $"cut at {i} ('{text[Math.Max(0, i - 12)..i]}|{text[i..Math.Min(text.Length, i + 12)]}')");
        }

        Assert.True(cuts > 10, $"{cuts} cuts");
    }

    /// <summary>Longest-first over the two sides' full ids: drop the last id of the longer one, the pair's on a tie.</summary>
    public static (int A, int B) Truncate(int a, int b, int budget)
    {
        while (a + b > budget)
        {
            if (b >= a)
                b--;
            else
                a--;
        }

        return (a, b);
    }
}

[Collection(MiniLmCollection.Name)]
public sealed class LongTextWordPieceTests(MiniLmFixture fixture)
{
    [Theory]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(512)]
    public void Encode_LongTextsAndPairs_GiveTheIdsOfTheWholeTextTruncated(int maxLength)
    {
        var (vocabulary, settings) = BertCheckpoint.ReadTokenizer(fixture.CheckpointDirectory);
        using var whole = new BertWordPieceTokenizer(vocabulary, settings);
        foreach (var (text, pair) in LongTexts.Cases())
        {
            var a = WholeIds(whole, settings, text);
            var b = pair is null ? null : WholeIds(whole, settings, pair);
            var (keepA, keepB) = LongTexts.Truncate(a.Length, b?.Length ?? 0, maxLength - (pair is null ? 2 : 3));
            long[] expected = b is null
                ? [101, .. a[..keepA], 102]
                : [101, .. a[..keepA], 102, .. b[..keepB], 102];

            using var batch = fixture.Backbone.Encode([text], pair is null ? null : [pair], maxLength);

            Assert.True(expected.SequenceEqual(batch.InputIds.data<long>().ToArray()), $"max_length {maxLength}, text '{Head(text)}', pair '{Head(pair)}'");
        }
    }

    [Fact]
    public void LongText_IsTokenizedFromAPrefix()
    {
        // The speed-up itself: a 30,000-character text needs its first 62 tokens, not all of them.
        var (vocabulary, settings) = BertCheckpoint.ReadTokenizer(fixture.CheckpointDirectory);
        using var tokenizer = new BertWordPieceTokenizer(vocabulary, settings);
        foreach (var text in new[] { LongTexts.Mixed(5, 30_000), LongTexts.Chinese(20_000) })
        {
            var longest = 0;
            var ids = TokenPrefix.Encode(text, 62, t =>
            {
                longest = Math.Max(longest, t.Length);
                return WholeIds(tokenizer, settings, t);
            }, (t, i) => BertBasicTokenizer.IsWordStart(t, i, settings));

            Assert.True(ids.Length >= 62);
            Assert.InRange(longest, 1, 2_000);
        }
    }

    [Fact]
    public void EveryWordStart_TokenizesToAPrefixOfTheWholeText()
    {
        var (vocabulary, settings) = BertCheckpoint.ReadTokenizer(fixture.CheckpointDirectory);
        using var tokenizer = new BertWordPieceTokenizer(vocabulary, settings);
        foreach (var text in LongTexts.ShortMixes())
            LongTexts.AssertEveryCutGivesAPrefix(text, t => WholeIds(tokenizer, settings, t), (t, i) => BertBasicTokenizer.IsWordStart(t, i, settings));
    }

    // The whole text's WordPiece ids: a budget no text here reaches, so nothing is cut or truncated.
    private static long[] WholeIds(BertWordPieceTokenizer tokenizer, TokenizerSettings settings, string text)
    {
        using var batch = tokenizer.Encode([text], null, 1_000_000, settings);
        var ids = batch.InputIds.data<long>().ToArray();
        return ids[1..^1]; // without [CLS] and [SEP]
    }

    private static string? Head(string? text) => text?[..Math.Min(30, text.Length)];
}

public sealed class LongTextDecoderTests(Gpt2TokenizerFixture gpt2) : IClassFixture<Gpt2TokenizerFixture>, IDisposable
{
    private readonly TempDirectory directory = new();

    [Fact]
    public void Gpt2_LongTextsAndPairs_GiveTheIdsOfTheWholeTextTruncated() => AssertWholeTextIds(gpt2.Tokenizer, expectCuts: true);

    [Fact]
    public void TinyLlamaByteLevel_LongTextsAndPairs_GiveTheIdsOfTheWholeTextTruncated()
    {
        TinyLlamaCheckpoint.Write(directory.Path, new TinyLlamaCheckpoint.Options(), seed: 1);
        using var tokenizer = DecoderTokenizer.Load(directory.Path);
        AssertWholeTextIds(tokenizer, expectCuts: true);
    }

    [Fact]
    public void Llama3StyleSplit_LongTextsAndPairs_GiveTheIdsOfTheWholeTextTruncated()
    {
        // GPT-2's vocabulary behind Llama 3's pre-tokenizer: a Split on its pattern, then byte-level without a regex.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(gpt2.Directory, DecoderTokenizer.TokenizerJsonFile)))!.AsObject();
        json["pre_tokenizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "Split",
                    ["pattern"] = new JsonObject { ["Regex"] = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+" },
                    ["behavior"] = "Isolated",
                    ["invert"] = false,
                },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
        File.WriteAllText(directory.Sub(DecoderTokenizer.TokenizerJsonFile), json.ToJsonString());
        using var tokenizer = DecoderTokenizer.Load(directory.Path, configBosTokenId: 50256, configEosTokenId: 50256);
        AssertWholeTextIds(tokenizer, expectCuts: true);
    }

    [Fact]
    public void Llama2LegacyFile_WhichRunsBpeOverTheWholeText_IsNotCut()
    {
        // No pre-tokenizer: BPE sees the whole text as one piece, so no cut is known to be safe.
        var vocab = TokenizerTestFiles.SentencePieceVocab.Create(["▁", "▁t", "he", "▁the", "▁a", "qu", "ick"]);
        TokenizerTestFiles.WriteLlama2TokenizerJson(directory.Sub(DecoderTokenizer.TokenizerJsonFile), vocab);
        Assert.False(DecoderTokenizer.SplitsBeforeSpaces(JsonNode.Parse(File.ReadAllText(directory.Sub(DecoderTokenizer.TokenizerJsonFile)))!.AsObject()));
        using var tokenizer = DecoderTokenizer.Load(directory.Path, configBosTokenId: 1, configEosTokenId: 2);
        AssertWholeTextIds(tokenizer, expectCuts: false);
    }

    [Fact]
    public void LongText_IsTokenizedFromAPrefix()
    {
        var text = LongTexts.Mixed(5, 30_000);
        var longest = 0;
        var ids = TokenPrefix.Encode(text, 62, t =>
        {
            longest = Math.Max(longest, t.Length);
            return gpt2.Tokenizer.EncodeText(t);
        }, DecoderTokenizer.IsSpaceCut);

        Assert.True(ids.Length >= 62);
        Assert.InRange(longest, 1, 2_000);
    }

    private static void AssertWholeTextIds(DecoderTokenizer tokenizer, bool expectCuts)
    {
        Assert.Equal(expectCuts, tokenizer.CutsLongTexts);
        if (expectCuts)
        {
            foreach (var text in LongTexts.ShortMixes())
                LongTexts.AssertEveryCutGivesAPrefix(text, tokenizer.EncodeText, DecoderTokenizer.IsSpaceCut);
        }

        var eos = tokenizer.EosTokenId!.Value;
        foreach (var maxLength in new[] { 8, 64, 300 })
        {
            foreach (var (text, pair) in LongTexts.Cases())
            {
                var a = tokenizer.EncodeText(text);
                var b = pair is null ? null : tokenizer.EncodeText(pair);
                var specials = (tokenizer.AddBosToken ? 1 : 0) + (pair is null ? 0 : 1) + (tokenizer.AddEosToken ? 1 : 0);
                var (keepA, keepB) = LongTexts.Truncate(a.Length, b?.Length ?? 0, maxLength - specials);
                var expected = new List<int>();
                if (tokenizer.AddBosToken)
                    expected.Add(tokenizer.BosTokenId!.Value);
                expected.AddRange(a[..keepA]);
                if (b is not null)
                {
                    expected.Add(eos);
                    expected.AddRange(b[..keepB]);
                }

                if (tokenizer.AddEosToken)
                    expected.Add(eos);
                if (expected.Count == 0)
                    expected.Add(eos); // an example is never empty (EncodeExample's contract)

                var actual = tokenizer.EncodeExample(text, pair, maxLength);
                Assert.True(expected.SequenceEqual(actual),
                    $"max_length {maxLength}, text '{text[..Math.Min(30, text.Length)]}' ({text.Length}), pair '{pair?[..Math.Min(30, pair.Length)]}' ({pair?.Length}): " +
                    $"expected {string.Join(",", expected)}, got {string.Join(",", actual)}");
            }
        }
    }

    public void Dispose() => directory.Dispose();
}
