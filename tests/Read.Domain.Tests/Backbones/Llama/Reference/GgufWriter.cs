using System.Text;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;

namespace Read.Domain.Tests.Backbones.Llama.Reference;

/// <summary>
/// Converts a small Hugging Face-layout Llama-family checkpoint (config.json + safetensors) into a GGUF v3 file
/// that llama.cpp loads, with every tensor F32. It mirrors what llama.cpp's convert_hf_to_gguf.py writes for
/// LlamaForCausalLM / MistralForCausalLM (arch "llama") and Qwen2ForCausalLM (arch "qwen2"), so that llama.cpp
/// can serve as an independent reference for the TorchSharp decoder. Test code only: it loads every tensor into
/// memory, which is fine for the tiny checkpoints the parity tests use.
/// </summary>
/// <remarks>
/// Layout (GGUF spec, docs/gguf.md in ggml): magic "GGUF", uint32 version 3, uint64 tensor count, uint64 KV count,
/// the KV pairs, the tensor infos (name, n_dims, ne[] with ne[0] fastest-varying = reverse of the PyTorch shape,
/// ggml type, offset into the data section), padding to general.alignment, then the tensor data, each tensor
/// starting at a multiple of the alignment. Everything little-endian.
/// </remarks>
internal static class GgufWriter
{
    private const uint Alignment = 32;
    private const uint GgmlTypeF32 = 0;

    // GGUF metadata value types.
    private const uint TypeUInt32 = 4;
    private const uint TypeInt32 = 5;
    private const uint TypeFloat32 = 6;
    private const uint TypeBool = 7;
    private const uint TypeString = 8;
    private const uint TypeArray = 9;

    // llama.cpp token types (llama_token_type / gguf.TokenType).
    private const int TokenNormal = 1;
    private const int TokenUnknown = 2;
    private const int TokenControl = 3;
    private const int TokenByte = 6;

    public static void WriteFromHuggingFace(string hfDirectory, string ggufPath)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(hfDirectory, "config.json")))?.AsObject()
                     ?? throw new InvalidDataException("config.json is empty.");
        var weights = ReadWeights(hfDirectory);
        var kv = new List<(string Key, uint Type, object Value)>();
        var tensors = BuildTensors(config, weights, kv, Path.GetFileName(Path.TrimEndingDirectorySeparator(hfDirectory)));
        Write(ggufPath, kv, tensors);
    }

    private static Dictionary<string, SafeTensor> ReadWeights(string hfDirectory)
    {
        var single = Path.Combine(hfDirectory, "model.safetensors");
        if (File.Exists(single))
            return SafeTensorsFile.Read(File.ReadAllBytes(single));
        var index = Path.Combine(hfDirectory, "model.safetensors.index.json");
        if (!File.Exists(index))
            throw new FileNotFoundException($"{hfDirectory} has neither model.safetensors nor model.safetensors.index.json.");
        var weightMap = JsonNode.Parse(File.ReadAllText(index))?["weight_map"]?.AsObject()
                        ?? throw new InvalidDataException($"{index} has no weight_map.");
        var result = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var shard in weightMap.Select(p => p.Value!.GetValue<string>()).Distinct(StringComparer.Ordinal))
        {
            foreach (var (name, tensor) in SafeTensorsFile.Read(File.ReadAllBytes(Path.Combine(hfDirectory, shard))))
            {
                if (weightMap.ContainsKey(name))
                    result[name] = tensor;
            }
        }

        var missing = weightMap.Select(p => p.Key).Where(n => !result.ContainsKey(n)).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"Shards do not contain tensors listed in the index: {string.Join(", ", missing)}.");
        return result;
    }

    private static List<(string Name, long[] TorchShape, float[] Data)> BuildTensors(
        JsonObject config, Dictionary<string, SafeTensor> weights, List<(string, uint, object)> kv, string name)
    {
        var modelType = config["model_type"]?.GetValue<string>() ?? throw new InvalidDataException("config.json has no model_type.");
        var arch = modelType switch
        {
            "llama" or "mistral" => "llama",
            "qwen2" => "qwen2",
            _ => throw new NotSupportedException($"model_type '{modelType}' is not a supported Llama-family decoder."),
        };
        var hidden = Int(config, "hidden_size");
        var intermediate = Int(config, "intermediate_size");
        var layers = Int(config, "num_hidden_layers");
        var heads = Int(config, "num_attention_heads");
        var kvHeads = config["num_key_value_heads"] is { } kvNode ? kvNode.GetValue<int>() : heads;
        var defaultHeadDim = hidden / heads;
        var headDim = config["head_dim"] is { } hd && hd.GetValueKind() != System.Text.Json.JsonValueKind.Null ? hd.GetValue<int>() : defaultHeadDim;
        var eps = config["rms_norm_eps"]?.Number() ?? throw new InvalidDataException("config.json has no rms_norm_eps.");
        var ropeTheta = config["rope_theta"]?.Number() ?? 10000.0;
        var maxPositions = config["max_position_embeddings"]?.GetValue<int>() ?? 2048;
        var vocab = Int(config, "vocab_size");
        var tie = config["tie_word_embeddings"]?.GetValue<bool>() ?? false;

        kv.Add(("general.architecture", TypeString, arch));
        kv.Add(("general.name", TypeString, string.IsNullOrEmpty(name) ? "read-reference" : name));
        kv.Add(("general.alignment", TypeUInt32, Alignment));
        kv.Add(("general.file_type", TypeUInt32, 0u)); // LLAMA_FTYPE_ALL_F32
        kv.Add(("general.quantization_version", TypeUInt32, 2u));
        kv.Add(($"{arch}.context_length", TypeUInt32, (uint)maxPositions));
        kv.Add(($"{arch}.embedding_length", TypeUInt32, (uint)hidden));
        kv.Add(($"{arch}.block_count", TypeUInt32, (uint)layers));
        kv.Add(($"{arch}.feed_forward_length", TypeUInt32, (uint)intermediate));
        kv.Add(($"{arch}.attention.head_count", TypeUInt32, (uint)heads));
        kv.Add(($"{arch}.attention.head_count_kv", TypeUInt32, (uint)kvHeads));
        kv.Add(($"{arch}.attention.layer_norm_rms_epsilon", TypeFloat32, (float)eps));
        kv.Add(($"{arch}.rope.freq_base", TypeFloat32, (float)ropeTheta));
        if (headDim != defaultHeadDim)
        {
            kv.Add(($"{arch}.attention.key_length", TypeUInt32, (uint)headDim));
            kv.Add(($"{arch}.attention.value_length", TypeUInt32, (uint)headDim));
        }

        kv.Add(($"{arch}.rope.dimension_count", TypeUInt32, (uint)headDim));
        kv.Add(($"{arch}.vocab_size", TypeUInt32, (uint)vocab));

        var tensors = new List<(string Name, long[] TorchShape, float[] Data)>();
        if (config["rope_scaling"] is JsonObject scaling)
        {
            var ropeType = (scaling["rope_type"] ?? scaling["type"])?.GetValue<string>();
            if (ropeType == "linear" && scaling["factor"] is { } f)
            {
                kv.Add(($"{arch}.rope.scaling.type", TypeString, "linear"));
                kv.Add(($"{arch}.rope.scaling.factor", TypeFloat32, (float)f.Number()));
            }
            else if (ropeType == "llama3")
            {
                var factors = Llama3RopeFactors(scaling, config, ropeTheta, headDim);
                tensors.Add(("rope_freqs.weight", [factors.Length], factors));
            }
            else if (ropeType is not null && ropeType != "default")
            {
                throw new NotSupportedException($"rope_scaling type '{ropeType}' is not supported by this writer.");
            }
        }

        var (bos, eos) = (TokenId(config["bos_token_id"]) ?? 1, TokenId(config["eos_token_id"]) ?? 2);
        AddVocabulary(kv, vocab, bos, eos);

        var used = new HashSet<string>(StringComparer.Ordinal);
        SafeTensor Take(string hfName)
        {
            if (!weights.TryGetValue(hfName, out var t))
                throw new InvalidDataException($"The checkpoint has no tensor '{hfName}'.");
            used.Add(hfName);
            return t;
        }

        void Add(string ggufName, string hfName, Func<SafeTensor, float[]>? transform = null)
        {
            var t = Take(hfName);
            tensors.Add((ggufName, t.Shape, transform is null ? t.Data : transform(t)));
        }

        void AddOptional(string ggufName, string hfName, Func<SafeTensor, float[]>? transform = null)
        {
            if (weights.ContainsKey(hfName))
                Add(ggufName, hfName, transform);
        }

        // convert_hf_to_gguf.py LlamaModel.modify_tensors: q_proj/k_proj (weight and bias) are permuted from
        // Hugging Face's rotate-half RoPE layout (pairs (i, i + hd/2)) to GGML's "normal" RoPE, which rotates
        // adjacent pairs (2i, 2i+1). Qwen2 runs with NEOX RoPE (= rotate-half) in llama.cpp and is not permuted.
        var permute = arch == "llama";
        Add("token_embd.weight", "model.embed_tokens.weight");
        for (var i = 0; i < layers; i++)
        {
            var p = $"model.layers.{i}.";
            Add($"blk.{i}.attn_norm.weight", p + "input_layernorm.weight");
            Add($"blk.{i}.attn_q.weight", p + "self_attn.q_proj.weight", permute ? t => Permute(t, heads) : null);
            AddOptional($"blk.{i}.attn_q.bias", p + "self_attn.q_proj.bias", permute ? t => Permute(t, heads) : null);
            Add($"blk.{i}.attn_k.weight", p + "self_attn.k_proj.weight", permute ? t => Permute(t, kvHeads) : null);
            AddOptional($"blk.{i}.attn_k.bias", p + "self_attn.k_proj.bias", permute ? t => Permute(t, kvHeads) : null);
            Add($"blk.{i}.attn_v.weight", p + "self_attn.v_proj.weight");
            AddOptional($"blk.{i}.attn_v.bias", p + "self_attn.v_proj.bias");
            Add($"blk.{i}.attn_output.weight", p + "self_attn.o_proj.weight");
            AddOptional($"blk.{i}.attn_output.bias", p + "self_attn.o_proj.bias");
            Add($"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm.weight");
            Add($"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj.weight");
            Add($"blk.{i}.ffn_up.weight", p + "mlp.up_proj.weight");
            Add($"blk.{i}.ffn_down.weight", p + "mlp.down_proj.weight");
        }

        Add("output_norm.weight", "model.norm.weight");
        // Without output.weight llama.cpp ties the head to token_embd (TENSOR_DUPLICATED fallback).
        if (!tie)
            AddOptional("output.weight", "lm_head.weight");
        else
            used.Add("lm_head.weight");

        var unknown = weights.Keys.Where(k => !used.Contains(k) && !k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)).ToList();
        if (unknown.Count > 0)
            throw new InvalidDataException($"Tensors this writer does not know how to map: {string.Join(", ", unknown)}.");

        foreach (var (n, shape, data) in tensors)
        {
            if (data.LongLength != shape.Aggregate(1L, (a, b) => a * b))
                throw new InvalidDataException($"Tensor '{n}' has {data.LongLength} values for shape [{string.Join(", ", shape)}].");
        }

        return tensors;
    }

    /// <summary>
    /// convert_hf_to_gguf.py LlamaModel.permute: reshape(n_head, 2, rows/n_head/2, *rest).swapaxes(1, 2).reshape(shape).
    /// Row h*hd + j*(hd/2) + i of the Hugging Face tensor becomes row h*hd + 2i + j.
    /// </summary>
    internal static float[] Permute(SafeTensor t, int nHead)
    {
        var rows = (int)t.Shape[0];
        var cols = t.Shape.Length > 1 ? (int)t.Shape.Skip(1).Aggregate(1L, (a, b) => a * b) : 1;
        if (rows % (2 * nHead) != 0)
            throw new InvalidDataException($"Cannot permute {rows} rows into {nHead} heads of pairs.");
        var headDim = rows / nHead;
        var half = headDim / 2;
        var result = new float[t.Data.Length];
        for (var h = 0; h < nHead; h++)
        for (var j = 0; j < 2; j++)
        for (var i = 0; i < half; i++)
        {
            var from = h * headDim + j * half + i;
            var to = h * headDim + 2 * i + j;
            Array.Copy(t.Data, (long)from * cols, result, (long)to * cols, cols);
        }

        return result;
    }

    /// <summary>
    /// convert_hf_to_gguf.py LlamaModel.generate_extra_tensors for rope_type "llama3": one factor per rotary frequency,
    /// which llama.cpp divides the frequency by (ggml_rope_ext freq_factors). The converter reads
    /// original_max_position_embeddings from the top level of config.json (default 8192), whereas Hugging Face reads it
    /// from rope_scaling; we take rope_scaling's value first so that the reference matches what transformers computes
    /// (for Llama 3.x checkpoints both are 8192).
    /// </summary>
    internal static float[] Llama3RopeFactors(JsonObject scaling, JsonObject config, double theta, int headDim)
    {
        var factor = scaling["factor"]?.Number() ?? 8.0;
        var lowFreqFactor = scaling["low_freq_factor"]?.Number() ?? 1.0;
        var highFreqFactor = scaling["high_freq_factor"]?.Number() ?? 4.0;
        var oldContext = (scaling["original_max_position_embeddings"] ?? config["original_max_position_embeddings"])?.Number() ?? 8192;
        var lowFreqWavelen = oldContext / lowFreqFactor;
        var highFreqWavelen = oldContext / highFreqFactor;
        var result = new float[headDim / 2];
        for (var k = 0; k < result.Length; k++)
        {
            // torch computes freqs in float32: 1 / base ** (arange(0, dim, 2, float32) / dim).
            var freq = 1.0f / MathF.Pow((float)theta, (2 * k) / (float)headDim);
            var wavelen = 2 * Math.PI / freq;
            if (wavelen < highFreqWavelen)
                result[k] = 1;
            else if (wavelen > lowFreqWavelen)
                result[k] = (float)factor;
            else
            {
                var smooth = (oldContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                result[k] = (float)(1 / ((1 - smooth) / factor + smooth));
            }
        }

        return result;
    }

    /// <summary>A JSON number as double, whether it was written as an integer or not (8192 vs 8192.0).</summary>
    internal static double Number(this JsonNode node) =>
        double.Parse(node.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture);

    private static int? TokenId(JsonNode? node) => node switch
    {
        null => null,
        JsonArray { Count: > 0 } a => a[0]!.GetValue<int>(),
        JsonArray => null,
        _ when node.GetValueKind() == System.Text.Json.JsonValueKind.Null => null,
        _ => node.GetValue<int>(),
    };

    /// <summary>
    /// Synthesized SentencePiece-style vocabulary: llama.cpp will not load a model without one, but the parity
    /// tests pass token ids directly, so only its size and special ids matter.
    /// </summary>
    private static void AddVocabulary(List<(string, uint, object)> kv, int vocab, int bos, int eos)
    {
        if (vocab < 259)
            throw new ArgumentException($"vocab_size {vocab} is too small for <unk>, <s>, </s> and the 256 byte tokens; use at least 259.");
        if (bos >= vocab || eos >= vocab || bos < 0 || eos < 0)
            throw new ArgumentException($"bos {bos} / eos {eos} are outside the vocabulary of {vocab}.");
        var tokens = new string?[vocab];
        var types = new int[vocab];
        var unk = bos == 0 || eos == 0 ? -1 : 0;
        if (unk == 0)
            (tokens[0], types[0]) = ("<unk>", TokenUnknown);
        (tokens[bos], types[bos]) = ("<s>", TokenControl);
        if (eos != bos)
            (tokens[eos], types[eos]) = ("</s>", TokenControl);
        var next = 0;
        for (var b = 0; b < 256; b++)
        {
            while (tokens[next] is not null)
                next++;
            (tokens[next], types[next]) = ($"<0x{b:X2}>", TokenByte);
        }

        for (var i = 0; i < vocab; i++)
        {
            if (tokens[i] is null)
                (tokens[i], types[i]) = ($"tok{i}", TokenNormal);
        }

        kv.Add(("tokenizer.ggml.model", TypeString, "llama"));
        kv.Add(("tokenizer.ggml.tokens", TypeArray, (TypeString, tokens.Cast<object>().ToArray())));
        kv.Add(("tokenizer.ggml.scores", TypeArray, (TypeFloat32, Enumerable.Range(0, vocab).Select(i => (object)(types[i] == TokenNormal ? -(float)i : 0f)).ToArray())));
        kv.Add(("tokenizer.ggml.token_type", TypeArray, (TypeInt32, types.Cast<object>().ToArray())));
        kv.Add(("tokenizer.ggml.bos_token_id", TypeUInt32, (uint)bos));
        kv.Add(("tokenizer.ggml.eos_token_id", TypeUInt32, (uint)eos));
        if (unk >= 0)
            kv.Add(("tokenizer.ggml.unknown_token_id", TypeUInt32, (uint)unk));
        kv.Add(("tokenizer.ggml.add_bos_token", TypeBool, false));
        kv.Add(("tokenizer.ggml.add_eos_token", TypeBool, false));
    }

    private static int Int(JsonObject config, string key) =>
        config[key]?.GetValue<int>() ?? throw new InvalidDataException($"config.json has no {key}.");

    private static void Write(string path, List<(string Key, uint Type, object Value)> kv, List<(string Name, long[] TorchShape, float[] Data)> tensors)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var w = new BinaryWriter(stream, Encoding.UTF8); // BinaryWriter is little-endian on every platform.
        w.Write("GGUF"u8);
        w.Write(3u);
        w.Write((ulong)tensors.Count);
        w.Write((ulong)kv.Count);
        foreach (var (key, type, value) in kv)
        {
            WriteString(w, key);
            w.Write(type);
            WriteValue(w, type, value);
        }

        ulong offset = 0;
        foreach (var (name, shape, data) in tensors)
        {
            WriteString(w, name);
            w.Write((uint)shape.Length);
            for (var d = shape.Length - 1; d >= 0; d--)
                w.Write((ulong)shape[d]);
            w.Write(GgmlTypeF32);
            w.Write(offset);
            offset = Align(offset + (ulong)data.LongLength * 4);
        }

        Pad(w);
        foreach (var (_, _, data) in tensors)
        {
            if (BitConverter.IsLittleEndian)
                w.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
            else
                foreach (var v in data)
                    w.Write(v);
            Pad(w);
        }
    }

    private static ulong Align(ulong x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        w.Flush();
        var position = (ulong)w.BaseStream.Position;
        for (var i = position; i < Align(position); i++)
            w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, uint type, object value)
    {
        switch (type)
        {
            case TypeUInt32: w.Write((uint)value); break;
            case TypeInt32: w.Write((int)value); break;
            case TypeFloat32: w.Write((float)value); break;
            case TypeBool: w.Write((byte)((bool)value ? 1 : 0)); break;
            case TypeString: WriteString(w, (string)value); break;
            case TypeArray:
                var (elementType, items) = ((uint, object[]))value;
                w.Write(elementType);
                w.Write((ulong)items.Length);
                foreach (var item in items)
                    WriteValue(w, elementType, item);
                break;
            default: throw new ArgumentOutOfRangeException(nameof(type), type, "Unsupported GGUF value type.");
        }
    }
}
