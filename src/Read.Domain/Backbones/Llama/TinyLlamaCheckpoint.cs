using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Read.Domain.Backbones.Bert;

namespace Read.Domain.Backbones.Llama;

/// <summary>
/// Writes a small, randomly initialised Llama-family checkpoint exactly as the Hub lays one out: config.json,
/// model.safetensors or shards + model.safetensors.index.json (F32, F16 or BF16), a byte-level BPE tokenizer.json
/// (Llama 3 / Qwen2 style) and tokenizer_config.json. Deterministic for a seed; tests and benchmarks need no download.
/// </summary>
public static class TinyLlamaCheckpoint
{
    public const string BosToken = "<|begin_of_text|>";
    public const string EosToken = "<|end_of_text|>";

    /// <summary>The shape and options of the generated model; defaults are a 2-layer GQA Llama of width 64.</summary>
    public sealed record Options
    {
        public string ModelType { get; init; } = "llama";
        public int Layers { get; init; } = 2;
        public int HiddenSize { get; init; } = 64;
        public int Heads { get; init; } = 4;
        public int KeyValueHeads { get; init; } = 2;
        public int? HeadDim { get; init; }
        public int IntermediateSize { get; init; } = 128;
        public int MaxPositions { get; init; } = 256;
        public double RopeTheta { get; init; } = 10000;
        public JsonObject? RopeScaling { get; init; }
        public bool TieWordEmbeddings { get; init; }

        /// <summary>Write lm_head.weight (untied checkpoints have one; READ never loads it).</summary>
        public bool WriteLmHead { get; init; } = true;

        /// <summary>F32, F16 or BF16.</summary>
        public string StorageDtype { get; init; } = "F32";

        /// <summary>1: model.safetensors; more: model-0000N-of-0000M.safetensors with an index.</summary>
        public int Shards { get; init; } = 1;

        /// <summary>Rows of the embedding table: at least the generated vocabulary; more adds unused tokens (a real model's size).</summary>
        public int? VocabSize { get; init; }

        /// <summary>Standard deviation of the weights.</summary>
        public double InitializerRange { get; init; } = 0.1;
    }

    public static void Write(string directory, Options options, int seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(directory);
        var (vocabulary, merges) = ByteLevelVocabulary();
        var bos = vocabulary.Count;
        var eos = vocabulary.Count + 1;
        var vocabSize = Math.Max(vocabulary.Count + 2, options.VocabSize ?? 0);
        var o = options;
        var headDim = o.HeadDim ?? o.HiddenSize / o.Heads;
        var qkvBias = o.ModelType == "qwen2";

        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(o.ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" }),
            ["model_type"] = o.ModelType,
            ["vocab_size"] = vocabSize,
            ["hidden_size"] = o.HiddenSize,
            ["intermediate_size"] = o.IntermediateSize,
            ["num_hidden_layers"] = o.Layers,
            ["num_attention_heads"] = o.Heads,
            ["num_key_value_heads"] = o.KeyValueHeads,
            ["hidden_act"] = "silu",
            ["max_position_embeddings"] = o.MaxPositions,
            ["rms_norm_eps"] = 1e-5,
            ["rope_theta"] = o.RopeTheta,
            ["rope_scaling"] = o.RopeScaling?.DeepClone(),
            ["tie_word_embeddings"] = o.TieWordEmbeddings,
            ["bos_token_id"] = bos,
            ["eos_token_id"] = eos,
            ["torch_dtype"] = o.StorageDtype switch { "F16" => "float16", "BF16" => "bfloat16", _ => "float32" },
        };
        if (o.HeadDim is not null)
            config["head_dim"] = headDim;
        if (o.ModelType == "mistral")
            config["sliding_window"] = o.MaxPositions;

        var random = new Random(seed);
        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        void Normal(string name, double std, double mean, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (var i = 0; i < data.Length; i++)
                data[i] = (float)(mean + std * StandardNormal(random));
            tensors[name] = new SafeTensor(shape, data);
        }

        int d = o.HiddenSize, q = o.Heads * headDim, kv = o.KeyValueHeads * headDim, f = o.IntermediateSize;
        var std = o.InitializerRange;
        Normal("model.embed_tokens.weight", 1.0, 0, vocabSize, d);
        for (var l = 0; l < o.Layers; l++)
        {
            var p = $"model.layers.{l}";
            // Norm weights near 1, not exactly 1, so a test notices one that is not applied.
            Normal($"{p}.input_layernorm.weight", 0.1, 1, d);
            Normal($"{p}.self_attn.q_proj.weight", std, 0, q, d);
            Normal($"{p}.self_attn.k_proj.weight", std, 0, kv, d);
            Normal($"{p}.self_attn.v_proj.weight", std, 0, kv, d);
            Normal($"{p}.self_attn.o_proj.weight", std, 0, d, q);
            if (qkvBias)
            {
                Normal($"{p}.self_attn.q_proj.bias", std, 0, q);
                Normal($"{p}.self_attn.k_proj.bias", std, 0, kv);
                Normal($"{p}.self_attn.v_proj.bias", std, 0, kv);
            }

            Normal($"{p}.post_attention_layernorm.weight", 0.1, 1, d);
            Normal($"{p}.mlp.gate_proj.weight", std, 0, f, d);
            Normal($"{p}.mlp.up_proj.weight", std, 0, f, d);
            Normal($"{p}.mlp.down_proj.weight", std, 0, d, f);
        }

        Normal("model.norm.weight", 0.1, 1, d);
        if (!o.TieWordEmbeddings && o.WriteLmHead)
            Normal("lm_head.weight", std, 0, vocabSize, d);

        var json = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile), config.ToJsonString(json));
        File.WriteAllText(Path.Combine(directory, HuggingFaceCheckpoint.TokenizerFile), TokenizerJson(vocabulary, merges, bos, eos, vocabSize).ToJsonString(json), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(directory, HuggingFaceCheckpoint.TokenizerConfigFile), new JsonObject
        {
            ["bos_token"] = BosToken,
            ["eos_token"] = EosToken,
            ["add_bos_token"] = true,
            ["add_eos_token"] = false,
            ["model_max_length"] = o.MaxPositions,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        }.ToJsonString(json));
        WriteWeights(directory, tensors, o.StorageDtype, o.Shards);
    }

    /// <summary>Weights last, each file via a temporary name: a directory with its weights is a complete checkpoint.</summary>
    private static void WriteWeights(string directory, Dictionary<string, SafeTensor> tensors, string dtype, int shards)
    {
        void Publish(string name, byte[] bytes)
        {
            var path = Path.Combine(directory, name);
            var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
            File.WriteAllBytes(temporary, bytes);
            File.Move(temporary, path, overwrite: true);
        }

        if (shards <= 1)
        {
            Publish(HuggingFaceCheckpoint.WeightsFile, SafeTensorsFile.Write(tensors, dtype));
            return;
        }

        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var map = new JsonObject();
        long total = 0;
        for (var s = 0; s < shards; s++)
        {
            var file = $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var part = names.Where((_, i) => i * shards / names.Count == s).ToDictionary(n => n, n => tensors[n], StringComparer.Ordinal);
            foreach (var name in part.Keys)
                map[name] = file;
            total += part.Values.Sum(t => t.Data.LongLength * (dtype == "F32" ? 4 : 2));
            Publish(file, SafeTensorsFile.Write(part, dtype));
        }

        Publish(HuggingFaceCheckpoint.ShardIndexFile, Encoding.UTF8.GetBytes(new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = map,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true })));
    }

    /// <summary>
    /// GPT-2's byte-to-character alphabet (256 symbols, ids 0–255 in byte order) plus merges that build common English
    /// words, with and without the leading space ('Ġ'), character by character.
    /// </summary>
    private static (List<string> Vocabulary, List<string> Merges) ByteLevelVocabulary()
    {
        var alphabet = ByteAlphabet();
        var vocabulary = Enumerable.Range(0, 256).Select(b => alphabet[b].ToString()).ToList();
        var known = new HashSet<string>(vocabulary, StringComparer.Ordinal);
        var merges = new List<string>();
        foreach (var word in TinyBertCheckpoint.CommonWords.Split(' ', StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal))
        {
            foreach (var form in new[] { word, alphabet[' '] + word })
            {
                var current = form[..1];
                foreach (var c in form[1..])
                {
                    var next = current + c;
                    if (known.Add(next))
                    {
                        vocabulary.Add(next);
                        merges.Add($"{current} {c}");
                    }

                    current = next;
                }
            }
        }

        return (vocabulary, merges);
    }

    /// <summary>bytes_to_unicode from GPT-2: printable bytes map to themselves, the rest to U+0100 onwards.</summary>
    internal static char[] ByteAlphabet()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
            map[b] = printable.Contains(b) ? (char)b : (char)next++;
        return map;
    }

    private static JsonObject TokenizerJson(List<string> vocabulary, List<string> merges, int bos, int eos, int vocabSize)
    {
        var vocab = new JsonObject();
        for (var i = 0; i < vocabulary.Count; i++)
            vocab[vocabulary[i]] = i;
        JsonObject Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
            ["normalized"] = false, ["special"] = true,
        };
        JsonObject ByteLevel() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([Added(bos, BosToken), Added(eos, EosToken),
                .. Enumerable.Range(eos + 1, Math.Max(0, vocabSize - eos - 1)).Select(id => (JsonNode)Added(id, $"<|reserved_{id}|>"))]),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(),
            ["post_processor"] = ByteLevel(),
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)m).ToArray()),
            },
        };
    }

    private static double StandardNormal(Random random)
    {
        // Box-Muller: System.Random is deterministic per seed on every platform.
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }
}
