using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;

namespace Read.Bench.Decoders;

/// <summary>
/// Writes a random-weight Hugging Face checkpoint of a <see cref="DecoderShape"/> without holding it in memory: the
/// tokenizer files come from <see cref="TinyLlamaCheckpoint"/> (a 2-layer model written first, whose config.json and
/// weights are then replaced), and model.safetensors is streamed tensor by tensor, chunk by chunk, as BF16 (or F32)
/// straight to a FileStream. TinyLlamaCheckpoint.Write holds every tensor as float[] and the file as byte[], which a
/// 1B-parameter model does not fit.
/// </summary>
internal static class RandomDecoderCheckpoint
{
    private const int ChunkElements = 1 << 20;

    /// <summary>Writes the checkpoint unless <paramref name="directory"/> already holds a complete one; true if it wrote.</summary>
    /// <param name="shardBytes">
    /// When set, model-0000N-of-0000M.safetensors shards of about this many bytes each plus model.safetensors.index.json
    /// (as the Hub lays out large models) instead of one model.safetensors.
    /// </param>
    public static bool EnsureWritten(string directory, DecoderShape shape, string storageDtype, int seed, long? shardBytes = null)
    {
        var weights = Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile);
        if (File.Exists(weights) || File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.ShardIndexFile)))
            return false;
        Directory.CreateDirectory(directory);
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { ModelType = shape.ModelType, TieWordEmbeddings = true, MaxPositions = 2048 }, seed);
        File.Delete(weights);

        // Keep the tokenizer's special ids; everything else is the shape's published config.
        var configPath = Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["architectures"] = new JsonArray(shape.ModelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM");
        config["model_type"] = shape.ModelType;
        config["vocab_size"] = shape.Vocab;
        config["hidden_size"] = shape.Hidden;
        config["intermediate_size"] = shape.Intermediate;
        config["num_hidden_layers"] = shape.Layers;
        config["num_attention_heads"] = shape.Heads;
        config["num_key_value_heads"] = shape.KvHeads;
        config["head_dim"] = shape.HeadDim;
        config["max_position_embeddings"] = shape.MaxPositions;
        config["rms_norm_eps"] = shape.RmsNormEps;
        config["rope_theta"] = shape.RopeTheta;
        config["rope_scaling"] = shape.RopeScaling?.DeepClone();
        config["tie_word_embeddings"] = shape.Tied;
        config["torch_dtype"] = storageDtype == "BF16" ? "bfloat16" : "float32";
        if (shape.ModelType == "qwen2")
        {
            config["use_sliding_window"] = false;
            config["sliding_window"] = shape.MaxPositions;
        }

        File.WriteAllText(configPath, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var all = shape.Tensors().OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var width = storageDtype == "BF16" ? 2 : 4;
        if (shardBytes is not { } limit)
        {
            WriteSafetensors(weights, all, storageDtype, seed, all);
            return true;
        }

        // Shards in state-dict order of the model (embeddings, layers, norm), cut when the next tensor would overflow one.
        var shards = new List<List<(string Name, long[] Shape)>> { new() };
        long size = 0;
        foreach (var tensor in shape.Tensors())
        {
            var bytes = tensor.Shape.Aggregate(1L, (a, b) => a * b) * width;
            if (size > 0 && size + bytes > limit)
            {
                shards.Add([]);
                size = 0;
            }

            shards[^1].Add(tensor);
            size += bytes;
        }

        var map = new JsonObject();
        for (var i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            WriteSafetensors(Path.Combine(directory, name), shards[i].OrderBy(t => t.Name, StringComparer.Ordinal).ToList(), storageDtype, seed, all);
            foreach (var tensor in shards[i])
                map[tensor.Name] = name;
        }

        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = all.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b) * width) }, ["weight_map"] = map };
        File.WriteAllText(Path.Combine(directory, HuggingFaceCheckpoint.ShardIndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return true;
    }

    /// <param name="all">Every tensor of the model in name order: a tensor's random stream is seeded by its position there, whatever the sharding.</param>
    private static void WriteSafetensors(string path, List<(string Name, long[] Shape)> tensors, string dtype, int seed, List<(string Name, long[] Shape)> all)
    {
        var width = dtype switch { "BF16" => 2, "F32" => 4, _ => throw new ArgumentException($"Storage dtype {dtype} is not BF16 or F32.") };
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, dims) in tensors)
        {
            var size = dims.Aggregate(1L, (a, b) => a * b) * width;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(dims.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }

        var text = header.ToJsonString();
        var headerBytes = Encoding.UTF8.GetBytes(text.PadRight((text.Length + 7) / 8 * 8));
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(length, headerBytes.Length);
            stream.Write(length);
            stream.Write(headerBytes);
            var values = new float[ChunkElements];
            var bf16 = new ushort[ChunkElements];
            foreach (var (name, dims) in tensors)
            {
                var index = all.FindIndex(t => t.Name == name);
                var count = dims.Aggregate(1L, (a, b) => a * b);
                // Norm weights 1, projections and embeddings uniform with std 0.02 (Hugging Face's initializer_range), biases 0.02 too.
                var isNorm = name.EndsWith("norm.weight", StringComparison.Ordinal);
                var rng = new XorShift((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)(index + 1));
                const float halfWidth = 0.02f * 1.7320508f; // uniform on [-a, a] has std a / √3
                for (long start = 0; start < count; start += ChunkElements)
                {
                    var n = (int)Math.Min(ChunkElements, count - start);
                    for (var i = 0; i < n; i++)
                        values[i] = isNorm ? 1f : (rng.NextFloat() * 2f - 1f) * halfWidth;
                    if (width == 4)
                    {
                        stream.Write(MemoryMarshal.AsBytes(values.AsSpan(0, n)));
                        continue;
                    }

                    for (var i = 0; i < n; i++)
                    {
                        var bits = (uint)BitConverter.SingleToInt32Bits(values[i]);
                        bf16[i] = (ushort)((bits + (((bits >> 16) & 1) + 0x7FFF)) >> 16); // round to nearest even
                    }

                    stream.Write(MemoryMarshal.AsBytes(bf16.AsSpan(0, n)));
                }
            }
        }

        File.Move(temporary, path);
    }

    private struct XorShift(ulong seed)
    {
        private ulong state = seed == 0 ? 0x2545F4914F6CDD1DUL : seed;

        /// <summary>Uniform on [0, 1) from xorshift64*.</summary>
        public float NextFloat()
        {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            return ((state * 0x2545F4914F6CDD1DUL) >> 40) * (1f / (1 << 24));
        }
    }
}
