using System.Text.Json.Nodes;
using Read.Domain.Backbones;

namespace Read.Domain.Tests.Backbones.Llama.Reference;

/// <summary>Shape and options of a tiny random Llama-family checkpoint in Hugging Face layout.</summary>
internal sealed record TinyLlamaSpec(
    string ModelType = "llama",
    int Hidden = 64,
    int Intermediate = 128,
    int Layers = 2,
    int Heads = 4,
    int KvHeads = 2,
    int? HeadDim = null,
    int Vocab = 320,
    bool TieWordEmbeddings = false,
    bool WriteLmHead = true,
    double RopeTheta = 10000,
    JsonObject? RopeScaling = null,
    double RmsNormEps = 1e-6,
    int MaxPositions = 256,
    int? BosTokenId = 1,
    int? EosTokenId = 2,
    float WeightStd = 0.05f,
    // Larger q/k weights give attention scores of order one, so that RoPE (and the q/k permutation) visibly matter.
    float QkStd = 0.25f)
{
    public int ResolvedHeadDim => HeadDim ?? Hidden / Heads;

    public bool HasQkvBias => ModelType == "qwen2";

    public bool HasLmHead => !TieWordEmbeddings && WriteLmHead;
}

/// <summary>Writes tiny random Hugging Face checkpoints (config.json + model.safetensors) for the llama.cpp reference tests.</summary>
internal static class ReferenceLlamaCheckpoint
{
    public static Dictionary<string, SafeTensor> Write(string directory, TinyLlamaSpec spec, int seed)
    {
        Directory.CreateDirectory(directory);
        var tensors = Create(spec, seed);
        File.WriteAllText(Path.Combine(directory, "config.json"), Config(spec).ToJsonString());
        File.WriteAllBytes(Path.Combine(directory, "model.safetensors"), SafeTensorsFile.Write(tensors));
        return tensors;
    }

    public static JsonObject Config(TinyLlamaSpec spec)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(spec.ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" }),
            ["model_type"] = spec.ModelType,
            ["hidden_size"] = spec.Hidden,
            ["intermediate_size"] = spec.Intermediate,
            ["num_hidden_layers"] = spec.Layers,
            ["num_attention_heads"] = spec.Heads,
            ["num_key_value_heads"] = spec.KvHeads,
            ["rms_norm_eps"] = spec.RmsNormEps,
            ["rope_theta"] = spec.RopeTheta,
            ["rope_scaling"] = spec.RopeScaling?.DeepClone(),
            ["max_position_embeddings"] = spec.MaxPositions,
            ["vocab_size"] = spec.Vocab,
            ["tie_word_embeddings"] = spec.TieWordEmbeddings,
            ["hidden_act"] = "silu",
            ["torch_dtype"] = "float32",
        };
        if (spec.HeadDim is { } hd)
            config["head_dim"] = hd;
        if (spec.BosTokenId is { } bos)
            config["bos_token_id"] = bos;
        if (spec.EosTokenId is { } eos)
            config["eos_token_id"] = eos;
        return config;
    }

    public static Dictionary<string, SafeTensor> Create(TinyLlamaSpec spec, int seed)
    {
        var random = new Random(seed);
        var d = spec.Hidden;
        var hd = spec.ResolvedHeadDim;
        var q = spec.Heads * hd;
        var kv = spec.KvHeads * hd;
        var result = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);

        SafeTensor Normal(float std, float mean, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (var i = 0; i < data.Length; i++)
                data[i] = mean + std * Gaussian(random);
            return new SafeTensor(shape, data);
        }

        result["model.embed_tokens.weight"] = Normal(spec.WeightStd, 0, spec.Vocab, d);
        for (var l = 0; l < spec.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            result[p + "input_layernorm.weight"] = Normal(0.1f, 1, d);
            result[p + "self_attn.q_proj.weight"] = Normal(spec.QkStd, 0, q, d);
            result[p + "self_attn.k_proj.weight"] = Normal(spec.QkStd, 0, kv, d);
            result[p + "self_attn.v_proj.weight"] = Normal(spec.WeightStd, 0, kv, d);
            if (spec.HasQkvBias)
            {
                result[p + "self_attn.q_proj.bias"] = Normal(0.5f, 0, q);
                result[p + "self_attn.k_proj.bias"] = Normal(0.5f, 0, kv);
                result[p + "self_attn.v_proj.bias"] = Normal(0.05f, 0, kv);
            }

            result[p + "self_attn.o_proj.weight"] = Normal(spec.WeightStd, 0, d, q);
            result[p + "post_attention_layernorm.weight"] = Normal(0.1f, 1, d);
            result[p + "mlp.gate_proj.weight"] = Normal(spec.WeightStd, 0, spec.Intermediate, d);
            result[p + "mlp.up_proj.weight"] = Normal(spec.WeightStd, 0, spec.Intermediate, d);
            result[p + "mlp.down_proj.weight"] = Normal(spec.WeightStd, 0, d, spec.Intermediate);
        }

        result["model.norm.weight"] = Normal(0.1f, 1, d);
        if (spec.HasLmHead)
            result["lm_head.weight"] = Normal(spec.WeightStd, 0, spec.Vocab, d);
        return result;
    }

    private static float Gaussian(Random random)
    {
        var u1 = 1.0 - random.NextDouble();
        var u2 = random.NextDouble();
        return (float)(Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}

/// <summary>
/// A deliberately plain, double-precision forward pass of a Hugging Face Llama/Qwen2 decoder, written from the
/// transformers modelling code's definitions (Hugging Face weight layout, rotate-half RoPE, causal soft-max
/// attention with grouped KV heads, SwiGLU MLP, RMSNorm), independent of GGUF and of llama.cpp.
/// </summary>
internal static class NaiveLlamaForward
{
    /// <summary>Final RMSNorm output per token for one causal sequence starting at position 0.</summary>
    /// <param name="rope">False leaves out RoPE altogether; only for checking that a test is sensitive to it.</param>
    public static double[][] FinalHiddenStates(Dictionary<string, SafeTensor> w, TinyLlamaSpec spec, IReadOnlyList<int> ids, bool rope = true)
    {
        var d = spec.Hidden;
        var hd = spec.ResolvedHeadDim;
        var n = ids.Count;
        var h = ids.Select(id => Row(w["model.embed_tokens.weight"], id)).ToArray();
        var invFreq = InverseFrequencies(spec);
        for (var l = 0; l < spec.Layers; l++)
        {
            var p = $"model.layers.{l}.";
            var qs = new double[n][];
            var ks = new double[n][];
            var vs = new double[n][];
            for (var t = 0; t < n; t++)
            {
                var x = RmsNorm(h[t], w[p + "input_layernorm.weight"], spec.RmsNormEps);
                qs[t] = Linear(w[p + "self_attn.q_proj.weight"], w.GetValueOrDefault(p + "self_attn.q_proj.bias"), x);
                ks[t] = Linear(w[p + "self_attn.k_proj.weight"], w.GetValueOrDefault(p + "self_attn.k_proj.bias"), x);
                vs[t] = Linear(w[p + "self_attn.v_proj.weight"], w.GetValueOrDefault(p + "self_attn.v_proj.bias"), x);
                if (rope)
                {
                    ApplyRope(qs[t], spec.Heads, hd, t, invFreq);
                    ApplyRope(ks[t], spec.KvHeads, hd, t, invFreq);
                }
            }

            var groups = spec.Heads / spec.KvHeads;
            for (var t = 0; t < n; t++)
            {
                var attn = new double[spec.Heads * hd];
                for (var head = 0; head < spec.Heads; head++)
                {
                    var kvHead = head / groups; // repeat_kv: query head h uses kv head h / (heads / kv_heads)
                    var scores = new double[t + 1];
                    for (var s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (var i = 0; i < hd; i++)
                            dot += qs[t][head * hd + i] * ks[s][kvHead * hd + i];
                        scores[s] = dot / Math.Sqrt(hd);
                    }

                    var max = scores.Max();
                    var weights = scores.Select(z => Math.Exp(z - max)).ToArray();
                    var sum = weights.Sum();
                    for (var s = 0; s <= t; s++)
                    for (var i = 0; i < hd; i++)
                        attn[head * hd + i] += weights[s] / sum * vs[s][kvHead * hd + i];
                }

                var o = Linear(w[p + "self_attn.o_proj.weight"], w.GetValueOrDefault(p + "self_attn.o_proj.bias"), attn);
                for (var i = 0; i < d; i++)
                    h[t][i] += o[i];
            }

            for (var t = 0; t < n; t++)
            {
                var x = RmsNorm(h[t], w[p + "post_attention_layernorm.weight"], spec.RmsNormEps);
                var gate = Linear(w[p + "mlp.gate_proj.weight"], null, x);
                var up = Linear(w[p + "mlp.up_proj.weight"], null, x);
                var act = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                var down = Linear(w[p + "mlp.down_proj.weight"], null, act);
                for (var i = 0; i < d; i++)
                    h[t][i] += down[i];
            }
        }

        return h.Select(x => RmsNorm(x, w["model.norm.weight"], spec.RmsNormEps)).ToArray();
    }

    public static double[] Logits(Dictionary<string, SafeTensor> w, TinyLlamaSpec spec, double[] finalHidden) =>
        Linear(spec.HasLmHead ? w["lm_head.weight"] : w["model.embed_tokens.weight"], null, finalHidden);

    /// <summary>transformers' rope init functions: default, "linear" (positions / factor) and "llama3".</summary>
    public static double[] InverseFrequencies(TinyLlamaSpec spec)
    {
        var hd = spec.ResolvedHeadDim;
        var inv = Enumerable.Range(0, hd / 2).Select(i => Math.Pow(spec.RopeTheta, -2.0 * i / hd)).ToArray();
        var scaling = spec.RopeScaling;
        var type = (scaling?["rope_type"] ?? scaling?["type"])?.GetValue<string>();
        if (type == "linear")
            return inv.Select(f => f / GgufWriter.Number(scaling!["factor"]!)).ToArray();
        if (type == "llama3")
        {
            var factor = GgufWriter.Number(scaling!["factor"]!);
            var low = GgufWriter.Number(scaling["low_freq_factor"]!);
            var high = GgufWriter.Number(scaling["high_freq_factor"]!);
            var old = GgufWriter.Number(scaling["original_max_position_embeddings"]!);
            var lowWavelen = old / low;
            var highWavelen = old / high;
            return inv.Select(f =>
            {
                var wavelen = 2 * Math.PI / f;
                if (wavelen < highWavelen)
                    return f;
                if (wavelen > lowWavelen)
                    return f / factor;
                var smooth = (old / wavelen - low) / (high - low);
                return (1 - smooth) * f / factor + smooth * f;
            }).ToArray();
        }

        return inv;
    }

    // Hugging Face apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, where rotate_half pairs i with i + hd/2.
    private static void ApplyRope(double[] x, int heads, int hd, int position, double[] invFreq)
    {
        var half = hd / 2;
        for (var head = 0; head < heads; head++)
        for (var i = 0; i < half; i++)
        {
            var angle = position * invFreq[i];
            var (sin, cos) = Math.SinCos(angle);
            var a = x[head * hd + i];
            var b = x[head * hd + i + half];
            x[head * hd + i] = a * cos - b * sin;
            x[head * hd + i + half] = b * cos + a * sin;
        }
    }

    private static double[] Row(SafeTensor t, int row)
    {
        var cols = (int)t.Shape[1];
        return t.Data.Skip(row * cols).Take(cols).Select(v => (double)v).ToArray();
    }

    private static double[] RmsNorm(double[] x, SafeTensor weight, double eps)
    {
        var scale = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + eps);
        return x.Select((v, i) => v * scale * weight.Data[i]).ToArray();
    }

    private static double[] Linear(SafeTensor weight, SafeTensor? bias, double[] x)
    {
        var rows = (int)weight.Shape[0];
        var cols = (int)weight.Shape[1];
        var y = new double[rows];
        for (var r = 0; r < rows; r++)
        {
            double sum = bias?.Data[r] ?? 0;
            for (var c = 0; c < cols; c++)
                sum += weight.Data[r * cols + c] * x[c];
            y[r] = sum;
        }

        return y;
    }
}
