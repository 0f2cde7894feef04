using System.Text.Json.Nodes;

namespace Read.Domain.Backbones.Llama;

/// <summary>
/// The fields of a Llama-family <c>config.json</c> (model_type llama, mistral, qwen2) that the model code needs, read
/// with Hugging Face's defaults. <see cref="Parse"/> refuses options this implementation would only approximate.
/// </summary>
public sealed record LlamaConfig
{
    public required string ModelType { get; init; }
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required int NumAttentionHeads { get; init; }
    public required int NumKeyValueHeads { get; init; }
    public required int HeadDim { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double RmsNormEps { get; init; } = 1e-6;
    public double RopeTheta { get; init; } = 10000;
    public LlamaRopeScaling? RopeScaling { get; init; }

    /// <summary>Biases on q/k/v (Qwen2 always; Llama's attention_bias also puts one on o_proj).</summary>
    public bool QkvBias { get; init; }
    public bool OutputBias { get; init; }
    public bool MlpBias { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public int? BosTokenId { get; init; }
    public int? EosTokenId { get; init; }
    public int? PadTokenId { get; init; }

    /// <summary>Sliding-window attention span, when the model uses one (Mistral): inputs are capped to it, where it is exact.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>The longest input computed exactly: max_position_embeddings, or the sliding window if smaller.</summary>
    public int MaxInputLength => SlidingWindow is { } w ? Math.Min(w, MaxPositionEmbeddings) : MaxPositionEmbeddings;

    public static LlamaConfig Parse(JsonObject json, string source)
    {
        var errors = new List<string>();
        var modelType = String(json, "model_type") ?? "";
        if (modelType is not ("llama" or "mistral" or "qwen2"))
            errors.Add($"model_type '{modelType}' is not a Llama-family type (llama, mistral, qwen2).");
        var hidden = Int(json, "hidden_size") ?? 0;
        var heads = Int(json, "num_attention_heads") ?? 0;
        var kvHeads = Int(json, "num_key_value_heads") ?? heads;
        var headDim = Int(json, "head_dim") ?? (heads > 0 ? hidden / heads : 0);
        var act = String(json, "hidden_act") ?? "silu";
        if (act != "silu")
            errors.Add($"hidden_act '{act}' is not supported (only silu, as SwiGLU uses).");
        if (json["quantization_config"] is not null)
            errors.Add("quantized checkpoints (quantization_config) are not supported; use the fp32, fp16 or bf16 weights.");
        // pretraining_tp is not read: transformers' tensor-parallel slicing computes the same product as one matmul.

        var scaling = LlamaRopeScaling.Parse(json["rope_scaling"], errors);
        int? window = null;
        if (modelType == "qwen2")
        {
            if (Bool(json, "use_sliding_window") == true)
                window = Int(json, "sliding_window");
        }
        else
        {
            window = Int(json, "sliding_window");
        }

        var config = new LlamaConfig
        {
            ModelType = modelType,
            VocabSize = Int(json, "vocab_size") ?? 32000,
            HiddenSize = hidden,
            IntermediateSize = Int(json, "intermediate_size") ?? 0,
            NumHiddenLayers = Int(json, "num_hidden_layers") ?? 0,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            MaxPositionEmbeddings = Int(json, "max_position_embeddings") ?? 2048,
            RmsNormEps = Double(json, "rms_norm_eps") ?? 1e-6,
            RopeTheta = Double(json, "rope_theta") ?? 10000,
            RopeScaling = scaling,
            QkvBias = modelType == "qwen2" || Bool(json, "attention_bias") == true,
            OutputBias = modelType != "qwen2" && Bool(json, "attention_bias") == true,
            MlpBias = Bool(json, "mlp_bias") == true,
            TieWordEmbeddings = Bool(json, "tie_word_embeddings") ?? false,
            BosTokenId = FirstInt(json, "bos_token_id"),
            EosTokenId = FirstInt(json, "eos_token_id"),
            PadTokenId = FirstInt(json, "pad_token_id"),
            SlidingWindow = window,
        };
        if (config.VocabSize < 1 || hidden < 1 || config.IntermediateSize < 1 || config.NumHiddenLayers < 1 || heads < 1 || kvHeads < 1 || headDim < 1
            || config.MaxPositionEmbeddings < 1)
            errors.Add("vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim and max_position_embeddings must be positive.");
        else if (heads % kvHeads != 0)
            errors.Add($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}.");
        else if (headDim % 2 != 0)
            errors.Add($"head_dim {headDim} must be even for rotary position embeddings.");
        if (config.RmsNormEps <= 0 || config.RopeTheta <= 0)
            errors.Add("rms_norm_eps and rope_theta must be positive.");
        if (errors.Count > 0)
            throw new InvalidDataException($"{source}: {string.Join(" ", errors)}");
        return config;
    }

    internal static string? String(JsonObject json, string key) => json[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    internal static int? Int(JsonObject json, string key) => json[key] is JsonValue v && v.TryGetValue<double>(out var d) && d == Math.Floor(d) ? (int)d : null;

    internal static double? Double(JsonObject json, string key) => json[key] is JsonValue v && v.TryGetValue<double>(out var d) ? d : null;

    internal static bool? Bool(JsonObject json, string key) => json[key] is JsonValue v && v.TryGetValue<bool>(out var b) ? b : null;

    // eos_token_id may be a list (Llama 3 instruct); the first is the one a tokenizer appends.
    private static int? FirstInt(JsonObject json, string key) =>
        json[key] is JsonArray array ? array.Select(n => n is JsonValue v && v.TryGetValue<int>(out var i) ? i : (int?)null).FirstOrDefault(i => i is not null) : Int(json, key);
}

/// <summary>rope_scaling: linear (positions divided by factor) or llama3 (per-frequency, Llama 3.1/3.2).</summary>
public sealed record LlamaRopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192)
{
    internal static LlamaRopeScaling? Parse(JsonNode? node, List<string> errors)
    {
        if (node is null)
            return null;
        if (node is not JsonObject json)
        {
            errors.Add("rope_scaling must be an object or null.");
            return null;
        }

        var type = LlamaConfig.String(json, "rope_type") ?? LlamaConfig.String(json, "type") ?? "default";
        var factor = LlamaConfig.Double(json, "factor") ?? 1;
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                if (factor <= 0)
                    errors.Add("rope_scaling.factor must be positive.");
                return new LlamaRopeScaling(type, factor);
            case "llama3":
                var scaling = new LlamaRopeScaling(type, factor, LlamaConfig.Double(json, "low_freq_factor") ?? 1, LlamaConfig.Double(json, "high_freq_factor") ?? 4,
                    LlamaConfig.Int(json, "original_max_position_embeddings") ?? 8192);
                if (factor <= 0 || scaling.LowFreqFactor <= 0 || scaling.HighFreqFactor <= scaling.LowFreqFactor || scaling.OriginalMaxPositionEmbeddings < 1)
                    errors.Add("rope_scaling (llama3) needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings ≥ 1.");
                return scaling;
            default:
                errors.Add($"rope_scaling type '{type}' is not supported (supported: linear, llama3).");
                return null;
        }
    }

    /// <summary>Hugging Face's inverse frequencies for a head of <paramref name="headDim"/>, with this scaling applied.</summary>
    public static double[] InverseFrequencies(int headDim, double theta, LlamaRopeScaling? scaling)
    {
        var inv = new double[headDim / 2];
        for (var i = 0; i < inv.Length; i++)
            inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (scaling is null)
            return inv;
        if (scaling.Type == "linear")
            return inv.Select(f => f / scaling.Factor).ToArray();

        // llama3 (transformers' _compute_llama3_parameters): long wavelengths scaled down by factor, short ones kept,
        // the band between smoothly interpolated.
        double old = scaling.OriginalMaxPositionEmbeddings;
        var lowFreqWavelen = old / scaling.LowFreqFactor;
        var highFreqWavelen = old / scaling.HighFreqFactor;
        for (var i = 0; i < inv.Length; i++)
        {
            var wavelen = 2 * Math.PI / inv[i];
            var scaled = wavelen > lowFreqWavelen ? inv[i] / scaling.Factor : inv[i];
            var medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
            if (medium)
            {
                var smooth = (old / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                scaled = (1 - smooth) * scaled / scaling.Factor + smooth * scaled;
            }

            inv[i] = scaled;
        }

        return inv;
    }
}
