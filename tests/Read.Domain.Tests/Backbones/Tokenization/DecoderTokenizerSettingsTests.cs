using System.Text.Json.Nodes;
using Read.Domain.Backbones.Tokenization;
using HfTokenizer = Tokenizers.DotNet.Tokenizer;

namespace Read.Domain.Tests.Backbones.Tokenization;

/// <summary>
/// Special tokens, the pair template, truncation and the fingerprint, on a tiny byte-level tokenizer.json whose ids are
/// known by construction (byte b → id b, &lt;s&gt;=256, &lt;/s&gt;=257, &lt;pad&gt;=258).
/// </summary>
public sealed class DecoderTokenizerSettingsTests : IDisposable
{
    private const int Bos = 256, Eos = 257, Pad = 258;
    private readonly TempDirectory directory = new();

    private string Dir => directory.Path;

    private void WriteTokenizer(JsonNode? postProcessor, params (string, string)[] merges) =>
        TokenizerTestFiles.WriteTinyByteLevel(directory.Sub("tokenizer.json"), postProcessor, merges);

    private void WriteConfig(JsonObject config) => File.WriteAllText(directory.Sub("tokenizer_config.json"), config.ToJsonString());

    private static int[] Bytes(string text) => [.. System.Text.Encoding.UTF8.GetBytes(text).Select(b => (int)b)];

    private DecoderTokenizer LoadWithSpecials(bool addBos = true, bool addEos = false)
    {
        WriteTokenizer(null);
        WriteConfig(new JsonObject
        {
            ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["add_bos_token"] = addBos, ["add_eos_token"] = addEos,
        });
        return DecoderTokenizer.Load(Dir);
    }

    [Fact]
    public void HuggingFaceEncode_AppliesThePostProcessor_ButEncodeTextDoesNot()
    {
        WriteTokenizer(TokenizerTestFiles.BosTemplate("<s>", Bos));
        // The library behaviour DecoderTokenizer works around: Tokenizers.DotNet's Encode adds the template's BOS.
        using (var raw = new HfTokenizer(directory.Sub("tokenizer.json")))
            Assert.Equal([(uint)Bos, 97, 98, 99], raw.Encode("abc"));
        using var tokenizer = DecoderTokenizer.Load(Dir);
        Assert.Equal(Bytes("abc"), tokenizer.EncodeText("abc"));
        Assert.True(tokenizer.AddBosToken);
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal([Bos, 97, 98, 99], tokenizer.EncodeExample("abc", null, 16));
    }

    [Fact]
    public void TokenizerConfig_StringAndObjectTokens_AreResolved()
    {
        WriteTokenizer(null);
        WriteConfig(new JsonObject
        {
            ["bos_token"] = "<s>",
            ["eos_token"] = new JsonObject { ["__type"] = "AddedToken", ["content"] = "</s>", ["lstrip"] = false },
            ["pad_token"] = new JsonObject { ["content"] = "<pad>" },
        });
        using var tokenizer = DecoderTokenizer.Load(Dir, configBosTokenId: 1, configEosTokenId: 2, configPadTokenId: 3);
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal(Eos, tokenizer.EosTokenId);
        Assert.Equal(Pad, tokenizer.PadTokenId);
        // No post-processor and no add_*_token: nothing is added.
        Assert.False(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal(259, tokenizer.VocabularySize);
    }

    [Fact]
    public void ConfigIds_AreUsed_WhenTokenizerConfigNamesNoToken_AndPadFallsBackToEos()
    {
        WriteTokenizer(null);
        using var tokenizer = DecoderTokenizer.Load(Dir, configBosTokenId: Bos, configEosTokenId: Eos);
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal(Eos, tokenizer.EosTokenId);
        Assert.Equal(Eos, tokenizer.PadTokenId);
        using var withPad = DecoderTokenizer.Load(Dir, configPadTokenId: Pad);
        Assert.Null(withPad.BosTokenId);
        Assert.Null(withPad.EosTokenId);
        Assert.Equal(Pad, withPad.PadTokenId);
        using var bare = DecoderTokenizer.Load(Dir);
        Assert.Equal(0, bare.PadTokenId);
    }

    [Fact]
    public void AddBosTokenFalse_OverridesTheTemplate()
    {
        WriteTokenizer(TokenizerTestFiles.BosTemplate("<s>", Bos));
        WriteConfig(new JsonObject { ["add_bos_token"] = false, ["add_eos_token"] = true, ["eos_token"] = "</s>" });
        using var tokenizer = DecoderTokenizer.Load(Dir);
        Assert.False(tokenizer.AddBosToken);
        Assert.True(tokenizer.AddEosToken);
        Assert.Equal([97, 98, Eos], tokenizer.EncodeExample("ab", null, 16));
    }

    [Fact]
    public void TemplateWithBosAndEos_SetsBothDefaults()
    {
        WriteTokenizer(TokenizerTestFiles.BosTemplate("<s>", Bos, "</s>", Eos));
        using var tokenizer = DecoderTokenizer.Load(Dir);
        Assert.True(tokenizer.AddBosToken);
        Assert.True(tokenizer.AddEosToken);
        Assert.Equal([Bos, 120, Eos], tokenizer.EncodeExample("x", null, 16));
    }

    [Fact]
    public void Llama3StyleSequenceProcessor_AddsBos()
    {
        // Llama 3.x: post_processor = Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)].
        WriteTokenizer(new JsonObject
        {
            ["type"] = "Sequence",
            ["processors"] = new JsonArray(TokenizerTestFiles.ByteLevelProcessor(), TokenizerTestFiles.BosTemplate("<s>", Bos)),
        });
        using var tokenizer = DecoderTokenizer.Load(Dir, configBosTokenId: Bos, configEosTokenId: Eos);
        Assert.True(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal([Bos, 104, 105], tokenizer.EncodeExample("hi", null, 8));
    }

    [Fact]
    public void Qwen2StyleConfig_NullBos_NoBosAdded()
    {
        // Qwen2: ByteLevel post-processor, tokenizer_config bos_token null, add_bos_token unset, pad "<|endoftext|>".
        WriteTokenizer(TokenizerTestFiles.ByteLevelProcessor());
        WriteConfig(new JsonObject
        {
            ["bos_token"] = null, ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["add_prefix_space"] = false,
        });
        using var tokenizer = DecoderTokenizer.Load(Dir, configBosTokenId: Bos, configEosTokenId: Eos);
        Assert.False(tokenizer.AddBosToken);
        Assert.False(tokenizer.AddEosToken);
        Assert.Equal(Bos, tokenizer.BosTokenId);
        Assert.Equal(Pad, tokenizer.PadTokenId);
        Assert.Equal([104, 105, Eos, 120], tokenizer.EncodeExample("hi", "x", 8));
    }

    [Fact]
    public void AddedTokensDecoder_ResolvesTokensOutsideTheFile()
    {
        WriteTokenizer(null);
        WriteConfig(new JsonObject
        {
            ["added_tokens_decoder"] = new JsonObject { ["258"] = new JsonObject { ["content"] = "<|pad|>", ["special"] = true } },
            ["pad_token"] = "<|pad|>",
        });
        using var tokenizer = DecoderTokenizer.Load(Dir);
        Assert.Equal(Pad, tokenizer.PadTokenId);
    }

    [Fact]
    public void SpecialTokenInText_IsRecognised()
    {
        using var tokenizer = LoadWithSpecials();
        Assert.Equal([97, Eos, 98], tokenizer.EncodeText("a</s>b"));
    }

    [Fact]
    public void Pair_IsSeparatedByEos()
    {
        using var tokenizer = LoadWithSpecials(addEos: true);
        Assert.Equal([Bos, 97, 98, Eos, 120, 121, Eos], tokenizer.EncodeExample("ab", "xy", 32));
        // An empty pair still gets its separator.
        Assert.Equal([Bos, 97, Eos, Eos], tokenizer.EncodeExample("a", "", 32));
    }

    [Fact]
    public void Truncation_IsLongestFirst_OnTheTextsOnly()
    {
        using var tokenizer = LoadWithSpecials();
        // Budget 7 - 2 specials = 5: "abcdef" (6) loses three tokens, "xy" (2) none.
        Assert.Equal([Bos, 97, 98, 99, Eos, 120, 121], tokenizer.EncodeExample("abcdef", "xy", 7));
        // Ties drop from the pair first: 4 + 4 → 3 + 2 within a budget of 5.
        Assert.Equal([Bos, 97, 98, 99, Eos, 119, 120], tokenizer.EncodeExample("abcd", "wxyz", 7));
        // The pair is longer: it alone is cut.
        Assert.Equal([Bos, 97, Eos, 112, 113, 114], tokenizer.EncodeExample("a", "pqrstuvw", 6));
    }

    [Fact]
    public void LongInput_IsCutToMaxLengthExactly_KeepingSpecials()
    {
        using var tokenizer = LoadWithSpecials(addEos: true);
        var text = string.Concat(Enumerable.Repeat("abc ", 100));
        var ids = tokenizer.EncodeExample(text, null, 16);
        Assert.Equal(16, ids.Length);
        Assert.Equal(Bos, ids[0]);
        Assert.Equal(Eos, ids[^1]);
        Assert.Equal(Bytes(text)[..14], ids[1..^1]);
        // Room for the specials only.
        Assert.Equal([Bos, Eos], tokenizer.EncodeExample(text, null, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.EncodeExample(text, null, 1));
    }

    [Fact]
    public void EmptyText_StillGivesAToken()
    {
        using (var withBos = LoadWithSpecials())
        {
            Assert.Equal([Bos], withBos.EncodeExample("", null, 8));
            Assert.Equal([Bos], withBos.EncodeExample(null, null, 8));
        }

        using (var withoutBos = LoadWithSpecials(addBos: false))
            Assert.Equal([Eos], withoutBos.EncodeExample("", null, 8));

        File.Delete(directory.Sub("tokenizer_config.json"));
        using var bare = DecoderTokenizer.Load(Dir, configPadTokenId: Pad);
        Assert.Equal([Pad], bare.EncodeExample("", null, 8));
        Assert.Throws<InvalidOperationException>(() => bare.EncodeExample("a", "b", 8));
    }

    [Fact]
    public void AddBosWithoutABosToken_IsRejected()
    {
        WriteTokenizer(null);
        WriteConfig(new JsonObject { ["add_bos_token"] = true });
        Assert.Throws<InvalidDataException>(() => DecoderTokenizer.Load(Dir));
    }

    [Fact]
    public void UnknownConfiguredToken_IsRejected()
    {
        WriteTokenizer(null);
        WriteConfig(new JsonObject { ["bos_token"] = "<|not-there|>" });
        var error = Assert.Throws<InvalidDataException>(() => DecoderTokenizer.Load(Dir));
        Assert.Contains("<|not-there|>", error.Message);
    }

    [Fact]
    public void Fingerprint_IsStableForACopy_AndChangesWithIdSettings()
    {
        WriteTokenizer(null, ("a", "b"));
        WriteConfig(new JsonObject { ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["add_bos_token"] = true });
        string original;
        using (var tokenizer = DecoderTokenizer.Load(Dir))
        {
            original = tokenizer.Fingerprint;
            Assert.Matches("^[0-9a-f]{64}$", original);
            Assert.Equal([259], tokenizer.EncodeText("ab"));
        }

        using (var copy = new TempDirectory())
        {
            foreach (var file in Directory.GetFiles(Dir))
                File.Copy(file, Path.Combine(copy.Path, Path.GetFileName(file)));
            using var copied = DecoderTokenizer.Load(copy.Path);
            Assert.Equal(original, copied.Fingerprint);
        }

        // A setting that does not change ids leaves it alone.
        WriteConfig(new JsonObject
        {
            ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["add_bos_token"] = true, ["model_max_length"] = 4096,
        });
        using (var same = DecoderTokenizer.Load(Dir))
            Assert.Equal(original, same.Fingerprint);

        WriteConfig(new JsonObject { ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["add_bos_token"] = false });
        using (var flipped = DecoderTokenizer.Load(Dir))
            Assert.NotEqual(original, flipped.Fingerprint);

        WriteConfig(new JsonObject
        {
            ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["pad_token"] = "<pad>", ["add_bos_token"] = true,
        });
        using (var padded = DecoderTokenizer.Load(Dir))
            Assert.NotEqual(original, padded.Fingerprint);

        // Another vocabulary entry: the merge a+b becomes b+c.
        WriteConfig(new JsonObject { ["bos_token"] = "<s>", ["eos_token"] = "</s>", ["add_bos_token"] = true });
        WriteTokenizer(null, ("b", "c"));
        using var changed = DecoderTokenizer.Load(Dir);
        Assert.NotEqual(original, changed.Fingerprint);
        Assert.Equal([97, 259], changed.EncodeText("abc"));
    }

    [Fact]
    public void MissingFiles_NameBoth()
    {
        var error = Assert.Throws<FileNotFoundException>(() => DecoderTokenizer.Load(Dir));
        Assert.Contains("tokenizer.json", error.Message);
        Assert.Contains("tokenizer.model", error.Message);
    }

    [Fact]
    public void Disposed_RefusesToEncode()
    {
        var tokenizer = LoadWithSpecials();
        tokenizer.Dispose();
        tokenizer.Dispose();
        Assert.Throws<ObjectDisposedException>(() => tokenizer.EncodeText("a"));
    }

    public void Dispose() => directory.Dispose();
}
