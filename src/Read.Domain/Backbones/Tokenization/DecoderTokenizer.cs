using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using HfTokenizer = Tokenizers.DotNet.Tokenizer;
using HfTokenizerException = Tokenizers.DotNet.TokenizerException;

namespace Read.Domain.Backbones.Tokenization;

/// <summary>
/// The tokenizer of a decoder-only backbone (Llama 2/3, Mistral, Qwen2, GPT-2 style checkpoints).
/// <para>
/// <c>tokenizer.json</c> (preferred when present) is run by Hugging Face's own Rust tokenizers through
/// Tokenizers.DotNet: byte-level BPE (Llama 3, Qwen2, GPT-2) and the SentencePiece-derived BPE with "▁" and byte
/// fallback (Llama 2, Mistral) alike. Otherwise <c>tokenizer.model</c> (a SentencePiece ModelProto) is run by
/// Microsoft.ML.Tokenizers' SentencePiece tokenizer.
/// </para>
/// <para>
/// Tokenizers.DotNet's <c>Encode</c> always applies the file's post-processor (it adds Llama's BOS, and would apply
/// any truncation or padding the file declares); it has no switch for that. So the file is loaded with
/// <c>post_processor</c>, <c>truncation</c> and <c>padding</c> removed, <see cref="EncodeText"/> returns ids without
/// special tokens for both file kinds, and <see cref="EncodeExample"/> adds BOS/EOS itself from
/// <see cref="AddBosToken"/> / <see cref="AddEosToken"/>. Special tokens written literally in the text (such as
/// "&lt;|endoftext|&gt;" in a tokenizer.json's added_tokens, or a tokenizer.model's BOS/EOS and the special
/// added_tokens_decoder entries of tokenizer_config.json) are still recognised, as Hugging Face does with
/// add_special_tokens=False.
/// </para>
/// <para>
/// Known difference between the kinds: a newer (legacy=false) tokenizer.json with a Metaspace pre-tokenizer does not
/// prepend "▁" to a text that already starts with a space, where SentencePiece (tokenizer.model) always adds its dummy
/// prefix; after a special token inside a text, the forms also differ in whether "▁" is prepended. tokenizer.json wins
/// when both files exist, which is what transformers' fast tokenizers (and so most fine-tuning) use.
/// </para>
/// <para>Thread-safe: every call into a backend is serialised by one lock.</para>
/// </summary>
public sealed class DecoderTokenizer : IDisposable
{
    /// <summary>The file name of Hugging Face's fast-tokenizer file.</summary>
    public const string TokenizerJsonFile = "tokenizer.json";

    /// <summary>The file name of a SentencePiece model.</summary>
    public const string TokenizerModelFile = "tokenizer.model";

    /// <summary>The file name of Hugging Face's tokenizer settings.</summary>
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>
    /// Our pair template, written into <see cref="Fingerprint"/>. Decoder checkpoints have no standard template for a
    /// pair of texts (Llama's tokenizer.json pair template just concatenates them); ours separates them with EOS:
    /// <c>[BOS if AddBosToken] A [EOS if a pair is given] B [EOS if AddEosToken]</c>, truncated longest-first on A and
    /// B only (the last token of the longer side goes first, B's on a tie), special tokens always kept.
    /// </summary>
    public const string PairTemplate = "v1: [BOS?] A [EOS if pair] B [EOS?]; truncation=longest_first(tie: B), specials kept";

    // The Split pre-tokenizer patterns of Llama 3 and Qwen2 tokenizer.json files: every piece they cut starts at a space
    // that follows a non-space (no alternative matches a non-space then a space), see SplitsBeforeSpaces.
    private static readonly HashSet<string> SpaceSplittingPatterns = new(StringComparer.Ordinal)
    {
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    };

    private readonly object gate = new();
    private readonly Func<string, int[]> encode;
    private readonly IDisposable? native;
    private readonly bool splitsBeforeSpaces;
    private bool disposed;

    private DecoderTokenizer(
        string kind, Func<string, int[]> encode, IDisposable? native, int? bos, int? eos, int pad, bool addBos,
        bool addEos, int? vocabularySize, string fingerprint, bool splitsBeforeSpaces)
    {
        Kind = kind;
        this.encode = encode;
        this.native = native;
        this.splitsBeforeSpaces = splitsBeforeSpaces;
        BosTokenId = bos;
        EosTokenId = eos;
        PadTokenId = pad;
        AddBosToken = addBos;
        AddEosToken = addEos;
        VocabularySize = vocabularySize;
        Fingerprint = fingerprint;
    }

    /// <summary>The id of the beginning-of-sequence token, if the tokenizer has one.</summary>
    public int? BosTokenId { get; }

    /// <summary>The id of the end-of-sequence token, if the tokenizer has one.</summary>
    public int? EosTokenId { get; }

    /// <summary>
    /// The padding id: pad_token if the checkpoint defines one, else the EOS id, else 0. Decoders often have no pad
    /// token; padded positions are masked, so any valid id does.
    /// </summary>
    public int PadTokenId { get; }

    /// <summary>Whether <see cref="EncodeExample"/> starts an example with BOS.</summary>
    public bool AddBosToken { get; }

    /// <summary>Whether <see cref="EncodeExample"/> ends an example with EOS.</summary>
    public bool AddEosToken { get; }

    /// <summary>One more than the largest id the tokenizer can produce (vocabulary plus added tokens).</summary>
    public int? VocabularySize { get; }

    /// <summary>
    /// Whether <see cref="EncodeExample"/> reads a long text's ids from a prefix of it (cut at a space, see
    /// <see cref="SplitsBeforeSpaces"/>); otherwise every text is tokenized whole.
    /// </summary>
    public bool CutsLongTexts => splitsBeforeSpaces;

    /// <summary>"tokenizer.json" or "tokenizer.model": the file the ids come from.</summary>
    public string Kind { get; }

    /// <summary>
    /// SHA-256 (lowercase hex) over the tokenizer file's bytes and every setting that changes ids (kind,
    /// add_bos/add_eos, BOS/EOS/pad ids, <see cref="PairTemplate"/>). Goes into activation-cache keys and adapter
    /// configs: the same file and settings always give the same string, wherever the file lies.
    /// </summary>
    public string Fingerprint { get; }

    /// <summary>
    /// Loads the tokenizer of the checkpoint in <paramref name="directory"/>: tokenizer.json when present, else
    /// tokenizer.model, plus tokenizer_config.json when present. The config ids are those of the checkpoint's
    /// config.json; they are used where tokenizer_config.json names no token (its token strings win, as they are what
    /// the tokenizer itself inserts).
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither tokenizer.json nor tokenizer.model is in the directory.</exception>
    /// <exception cref="InvalidDataException">A file cannot be read, a configured token is not in the vocabulary, or
    /// BOS/EOS must be added but has no id.</exception>
    public static DecoderTokenizer Load(
        string directory, int? configBosTokenId = null, int? configEosTokenId = null, int? configPadTokenId = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var jsonPath = Path.Combine(directory, TokenizerJsonFile);
        var modelPath = Path.Combine(directory, TokenizerModelFile);
        var configPath = Path.Combine(directory, TokenizerConfigFile);
        var config = File.Exists(configPath) ? ParseJson(configPath) : null;

        if (File.Exists(jsonPath))
            return LoadTokenizerJson(jsonPath, config, configBosTokenId, configEosTokenId, configPadTokenId);
        if (File.Exists(modelPath))
            return LoadTokenizerModel(modelPath, config, configBosTokenId, configEosTokenId, configPadTokenId);
        throw new FileNotFoundException(
            $"No tokenizer in '{directory}': expected {TokenizerJsonFile} or {TokenizerModelFile}.", jsonPath);
    }

    /// <summary>
    /// The ids of <paramref name="text"/> without any special token added (null is treated as ""). A lone UTF-16
    /// surrogate, which Hugging Face tokenizers rejects, is read as U+FFFD (as UTF-8 encoding does).
    /// </summary>
    public int[] EncodeText(string? text)
    {
        text = ReplaceLoneSurrogates(text ?? "");
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return text.Length == 0 ? [] : encode(text);
        }
    }

    /// <summary>
    /// The model input of one example, at most <paramref name="maxLength"/> ids, by <see cref="PairTemplate"/>:
    /// <c>[BOS if AddBosToken] text [EOS if pair is not null] pair [EOS if AddEosToken]</c>. Truncation is
    /// longest-first on the two texts only (the last token of the longer one is dropped, the pair's on a tie); special
    /// tokens are never dropped. The result is never empty: with no BOS and no text, it is one EOS (or pad) id.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> cannot hold the special tokens (or is
    /// below 1).</exception>
    /// <exception cref="InvalidOperationException">A pair is given but the tokenizer has no EOS to separate it.</exception>
    public int[] EncodeExample(string? text, string? pair, int maxLength)
    {
        var hasPair = pair is not null;
        if (hasPair && EosTokenId is null)
            throw new InvalidOperationException("A text pair needs an EOS token as separator; this tokenizer has none.");
        var specials = (AddBosToken ? 1 : 0) + (hasPair ? 1 : 0) + (AddEosToken ? 1 : 0);
        if (maxLength < Math.Max(1, specials))
            throw new ArgumentOutOfRangeException(
                nameof(maxLength), maxLength, $"An example needs room for its {Math.Max(1, specials)} special token(s).");

        var budget = maxLength - specials;
        var a = FirstIds(text, budget);
        var b = hasPair ? FirstIds(pair, budget) : [];
        int aLength = a.Length, bLength = b.Length;
        while (aLength + bLength > budget)
        {
            if (bLength >= aLength)
                bLength--;
            else
                aLength--;
        }

        var ids = new List<int>(specials + aLength + bLength);
        if (AddBosToken)
            ids.Add(BosTokenId!.Value);
        ids.AddRange(a.AsSpan(0, aLength));
        if (hasPair)
        {
            ids.Add(EosTokenId!.Value);
            ids.AddRange(b.AsSpan(0, bLength));
        }

        if (AddEosToken)
            ids.Add(EosTokenId!.Value);
        if (ids.Count == 0)
            ids.Add(EosTokenId ?? PadTokenId);
        return [.. ids];
    }

    // Neither text keeps more than the budget's ids, and longest-first truncation reads each one's length only up to the
    // budget: where the tokenizer splits words at spaces, only a prefix of a long text is tokenized (TokenPrefix).
    private int[] FirstIds(string? text, int budget) =>
        splitsBeforeSpaces && text is { Length: > 0 } ? TokenPrefix.Encode(text, budget, EncodeText, IsSpaceCut) : EncodeText(text);

    // A space after a non-space character, where every pre-tokenizer SplitsBeforeSpaces accepts starts a new piece.
    internal static bool IsSpaceCut(string text, int index) => text[index] == ' ' && !char.IsWhiteSpace(text[index - 1]);

    /// <summary>
    /// Whether a tokenizer.json splits a text at every space that follows a non-space character, so the ids of the text
    /// before it are the first ids of the whole text: a pre-tokenizer known to (byte-level with GPT-2's regex, Metaspace
    /// that splits, whitespace and BERT splitters, or a Split on Llama 3's or Qwen2's pattern; first in a sequence, as
    /// later members see the text the first one transformed), normalizers that work character by character (Unicode
    /// forms, lower-casing, prepending, stripping the ends), no sampling (BPE dropout), and no added token holding
    /// whitespace. Anything else (Llama 2's legacy files, which run BPE over the whole text) tokenizes whole texts.
    /// </summary>
    internal static bool SplitsBeforeSpaces(JsonObject json)
    {
        if (json["model"]?["dropout"] is JsonValue dropout && dropout.TryGetValue<double>(out var p) && p > 0)
            return false;
        if (json["added_tokens"] is JsonArray added && added.Any(t => t?["content"] is JsonValue c && c.TryGetValue<string>(out var content) && content.Any(char.IsWhiteSpace)))
            return false;
        return KeepsSpaces(json["normalizer"]) && SplitsAtSpaces(json["pre_tokenizer"]);

        static string? Type(JsonNode node) => node["type"] is JsonValue type && type.TryGetValue<string>(out var name) ? name : null;

        static bool KeepsSpaces(JsonNode? normalizer) => normalizer is null || Type(normalizer) switch
        {
            "NFC" or "NFD" or "NFKC" or "NFKD" or "Lowercase" or "Prepend" or "Strip" or "StripAccents" => true,
            "Sequence" => normalizer["normalizers"] is JsonArray all && all.All(KeepsSpaces),
            _ => false,
        };

        static bool Flag(JsonNode node, string name, bool unset) => node[name] is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : unset;

        static bool SplitsAtSpaces(JsonNode? pre) => pre is not null && Type(pre) switch
        {
            "ByteLevel" => Flag(pre, "use_regex", unset: true),
            "Metaspace" => Flag(pre, "split", unset: true),
            "Whitespace" or "WhitespaceSplit" or "BertPreTokenizer" => true,
            "Split" => pre["pattern"]?["Regex"] is JsonValue regex && regex.TryGetValue<string>(out var pattern) && SpaceSplittingPatterns.Contains(pattern)
                && pre["behavior"] is JsonValue behavior && behavior.TryGetValue<string>(out var how) && how == "Isolated" && !Flag(pre, "invert", unset: false),
            "Sequence" => pre["pretokenizers"] is JsonArray { Count: > 0 } members && SplitsAtSpaces(members[0]),
            _ => false,
        };
    }

    /// <inheritdoc />
    public void Dispose()
    {
        lock (gate)
        {
            if (disposed)
                return;
            disposed = true;
            native?.Dispose();
        }
    }

    private static DecoderTokenizer LoadTokenizerJson(
        string path, JsonNode? config, int? configBos, int? configEos, int? configPad)
    {
        var bytes = File.ReadAllBytes(path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(bytes)?.AsObject() ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{path}' is not a tokenizer.json: {e.Message}", e);
        }

        // Token string → id over the model vocabulary, then the added tokens (which win, as in tokenizers).
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var maxId = -1;
        if (json["model"]?["vocab"] is JsonObject vocab)
        {
            foreach (var (token, id) in vocab)
            {
                var value = id!.GetValue<int>();
                vocabulary[token] = value;
                maxId = Math.Max(maxId, value);
            }
        }
        else if (json["model"]?["vocab"] is JsonArray unigram)
        {
            // Unigram models list [piece, score] pairs; the id is the position.
            for (var i = 0; i < unigram.Count; i++)
                vocabulary[unigram[i]![0]!.GetValue<string>()] = i;
            maxId = unigram.Count - 1;
        }

        if (json["added_tokens"] is JsonArray added)
        {
            foreach (var token in added)
            {
                var id = token!["id"]!.GetValue<int>();
                vocabulary[token["content"]!.GetValue<string>()] = id;
                maxId = Math.Max(maxId, id);
            }
        }

        var template = PostProcessorSpecials(json["post_processor"]);
        var bos = ResolveToken(config, "bos_token", vocabulary) ?? configBos ?? template.Bos;
        var eos = ResolveToken(config, "eos_token", vocabulary) ?? configEos ?? template.Eos;
        var addBos = Flag(config, "add_bos_token") ?? template.Bos is not null;
        var addEos = Flag(config, "add_eos_token") ?? template.Eos is not null;
        var pad = ResolveToken(config, "pad_token", vocabulary) ?? configPad ?? eos ?? 0;

        // Tokenizers.DotNet always runs the post-processor and any truncation/padding of the file; load a copy without
        // them so the ids carry no special tokens. The copy only lives while the native side reads it.
        json["post_processor"] = null;
        json["truncation"] = null;
        json["padding"] = null;
        var copy = Path.Combine(Path.GetTempPath(), $"read-tokenizer-{Guid.NewGuid():N}.json");
        HfTokenizer tokenizer;
        try
        {
            File.WriteAllText(copy, json.ToJsonString());
            tokenizer = new HfTokenizer(vocabPath: copy);
        }
        catch (HfTokenizerException e)
        {
            throw new InvalidDataException($"Hugging Face tokenizers cannot load '{path}': {e.Message}", e);
        }
        finally
        {
            File.Delete(copy);
        }

        return Create(
            TokenizerJsonFile, bytes, text => ToInt(tokenizer.Encode(text)), tokenizer, bos, eos, pad, addBos, addEos,
            maxId >= 0 ? maxId + 1 : null, path, SplitsBeforeSpaces(json));
    }

    private static DecoderTokenizer LoadTokenizerModel(
        string path, JsonNode? config, int? configBos, int? configEos, int? configPad)
    {
        var bytes = File.ReadAllBytes(path);
        SentencePieceTokenizer tokenizer;
        try
        {
            tokenizer = CreateSentencePiece(bytes, null);
            // Special tokens written in the text are recognised, as by transformers' LlamaTokenizer and by tokenizer.json
            // files: the model's BOS/EOS, and the special tokens tokenizer_config.json adds.
            var specials = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (token, id) in new[]
                     {
                         (tokenizer.BeginningOfSentenceToken, tokenizer.BeginningOfSentenceId),
                         (tokenizer.EndOfSentenceToken, tokenizer.EndOfSentenceId),
                     })
            {
                if (!string.IsNullOrEmpty(token) && id >= 0)
                    specials[token] = id;
            }

            if (config?["added_tokens_decoder"] is JsonObject addedTokens)
            {
                foreach (var (id, entry) in addedTokens)
                {
                    if (entry?["special"]?.GetValue<bool>() == true && entry["content"]?.GetValue<string>() is { Length: > 0 } content
                        && int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
                        specials[content] = parsed;
                }
            }

            tokenizer = CreateSentencePiece(bytes, specials);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{path}' is not a SentencePiece model Microsoft.ML.Tokenizers can read: {e.Message}", e);
        }

        var vocabulary = new Dictionary<string, int>(tokenizer.Vocabulary, StringComparer.Ordinal);
        var maxId = vocabulary.Count == 0 ? -1 : vocabulary.Values.Max();
        var modelBos = tokenizer.BeginningOfSentenceId >= 0 ? tokenizer.BeginningOfSentenceId : (int?)null;
        var modelEos = tokenizer.EndOfSentenceId >= 0 ? tokenizer.EndOfSentenceId : (int?)null;
        var bos = ResolveToken(config, "bos_token", vocabulary) ?? configBos ?? modelBos;
        var eos = ResolveToken(config, "eos_token", vocabulary) ?? configEos ?? modelEos;
        // transformers' LlamaTokenizer defaults: add_bos_token=True, add_eos_token=False.
        var addBos = Flag(config, "add_bos_token") ?? true;
        var addEos = Flag(config, "add_eos_token") ?? false;
        var pad = ResolveToken(config, "pad_token", vocabulary) ?? configPad ?? eos ?? 0;

        return Create(
            TokenizerModelFile, bytes,
            text => [.. tokenizer.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false)],
            null, bos, eos, pad, addBos, addEos, maxId >= 0 ? maxId + 1 : null, path, splitsBeforeSpaces: false);
    }

    private static SentencePieceTokenizer CreateSentencePiece(byte[] bytes, IReadOnlyDictionary<string, int>? specialTokens)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        return LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false, specialTokens);
    }

    private static DecoderTokenizer Create(
        string kind, byte[] bytes, Func<string, int[]> encode, IDisposable? native, int? bos, int? eos, int pad,
        bool addBos, bool addEos, int? vocabularySize, string path, bool splitsBeforeSpaces)
    {
        if (addBos && bos is null)
        {
            native?.Dispose();
            throw new InvalidDataException($"'{path}': add_bos_token is set but no BOS token id is known.");
        }

        if (addEos && eos is null)
        {
            native?.Dispose();
            throw new InvalidDataException($"'{path}': add_eos_token is set but no EOS token id is known.");
        }

        return new DecoderTokenizer(
            kind, encode, native, bos, eos, pad, addBos, addEos, vocabularySize,
            ComputeFingerprint(kind, bytes, addBos, addEos, bos, eos, pad), splitsBeforeSpaces);
    }

    internal static string ComputeFingerprint(
        string kind, byte[] bytes, bool addBos, bool addEos, int? bos, int? eos, int pad)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(
            $"read.decoder-tokenizer\nkind={kind}\nbytes={bytes.Length.ToString(CultureInfo.InvariantCulture)}\n"));
        hash.AppendData(bytes);
        hash.AppendData(Encoding.UTF8.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $"\nadd_bos={addBos}\nadd_eos={addEos}\nbos={bos?.ToString() ?? "none"}\neos={eos?.ToString() ?? "none"}\npad={pad}\npair={PairTemplate}\n")));
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    internal static string ReplaceLoneSurrogates(string text)
    {
        StringBuilder? builder = null;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var paired = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (paired)
            {
                builder?.Append(c).Append(text[i + 1]);
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                builder ??= new StringBuilder(text, 0, i, text.Length);
                builder.Append('\uFFFD');
            }
            else
            {
                builder?.Append(c);
            }
        }

        return builder?.ToString() ?? text;
    }

    private static int[] ToInt(uint[] ids)
    {
        var result = new int[ids.Length];
        for (var i = 0; i < ids.Length; i++)
            result[i] = checked((int)ids[i]);
        return result;
    }

    private static JsonNode? ParseJson(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(path));
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {e.Message}", e);
        }
    }

    private static bool? Flag(JsonNode? config, string name) =>
        config?[name] is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : null;

    /// <summary>
    /// The id of a token named in tokenizer_config.json (a string, or an AddedToken object {"content": ...}); null when
    /// the setting is absent or null. added_tokens_decoder (id → token) is consulted first.
    /// </summary>
    private static int? ResolveToken(JsonNode? config, string name, IReadOnlyDictionary<string, int> vocabulary)
    {
        var node = config?[name];
        var token = node switch
        {
            JsonValue value when value.TryGetValue<string>(out var text) => text,
            JsonObject obj => obj["content"]?.GetValue<string>(),
            _ => null,
        };
        if (token is null)
            return null;
        if (config?["added_tokens_decoder"] is JsonObject decoder)
        {
            foreach (var (id, entry) in decoder)
            {
                if (entry?["content"]?.GetValue<string>() == token
                    && int.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed))
                    return parsed;
            }
        }

        return vocabulary.TryGetValue(token, out var found)
            ? found
            : throw new InvalidDataException($"{TokenizerConfigFile}: {name} '{token}' is not in the tokenizer's vocabulary.");
    }

    /// <summary>The special tokens a tokenizer.json's post-processor puts before and after a single sequence.</summary>
    private static (int? Bos, int? Eos) PostProcessorSpecials(JsonNode? processor)
    {
        switch (processor?["type"]?.GetValue<string>())
        {
            case "Sequence":
                int? bos = null, eos = null;
                foreach (var inner in processor["processors"]?.AsArray() ?? [])
                {
                    var (b, e) = PostProcessorSpecials(inner);
                    bos ??= b;
                    eos = e ?? eos;
                }

                return (bos, eos);
            case "TemplateProcessing":
                var single = processor["single"]?.AsArray() ?? [];
                var sequenceAt = single.ToList().FindIndex(item => item?["Sequence"] is not null);
                if (sequenceAt < 0)
                    return (null, null);
                int? Special(JsonNode? item)
                {
                    var name = item?["SpecialToken"]?["id"]?.GetValue<string>();
                    if (name is null)
                        return null;
                    var ids = processor["special_tokens"]?[name]?["ids"]?.AsArray();
                    return ids is { Count: > 0 } ? ids[0]!.GetValue<int>() : null;
                }

                return (
                    single.Take(sequenceAt).Select(Special).FirstOrDefault(id => id is not null),
                    single.Skip(sequenceAt + 1).Select(Special).LastOrDefault(id => id is not null));
            case "BertProcessing" or "RobertaProcessing":
                return (processor["cls"]?[1]?.GetValue<int>(), processor["sep"]?[1]?.GetValue<int>());
            default:
                return (null, null);
        }
    }
}
