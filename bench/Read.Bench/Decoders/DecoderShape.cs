using System.Text.Json.Nodes;

namespace Read.Bench.Decoders;

/// <summary>
/// A Llama-family shape (config.json fields) for a random-weight checkpoint: the published configs of Qwen2.5-0.5B and
/// Llama-3.2-1B, and two tiny ones for --quick. Weights are random; only the shape (and so memory and FLOPs) is real.
/// </summary>
internal sealed record DecoderShape(
    string Name, string ModelType, int Hidden, int Layers, int Heads, int KvHeads, int Intermediate, int Vocab, bool Tied,
    double RopeTheta, double RmsNormEps, int MaxPositions, JsonObject? RopeScaling)
{
    public int HeadDim => Hidden / Heads;

    public bool QkvBias => ModelType == "qwen2";

    public static readonly IReadOnlyList<DecoderShape> Known =
    [
        // Qwen/Qwen2.5-0.5B config.json.
        new("qwen2.5-0.5b", "qwen2", 896, 24, 14, 2, 4864, 151936, true, 1_000_000, 1e-6, 32768, null),
        // meta-llama/Llama-3.2-1B config.json.
        new("llama-3.2-1b", "llama", 2048, 16, 32, 8, 8192, 128256, true, 500_000, 1e-5, 131072, Llama3Scaling()),
        // Smoke shapes (--quick): same code paths (GQA, llama3 rope; qwen2 biases, tied), seconds to run.
        new("tiny-llama", "llama", 256, 4, 8, 2, 688, 32000, true, 500_000, 1e-5, 2048, Llama3Scaling()),
        new("tiny-qwen2", "qwen2", 128, 2, 4, 2, 320, 16384, true, 1_000_000, 1e-6, 2048, null),
    ];

    public static DecoderShape Find(string name) =>
        Known.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown shape '{name}' (known: {string.Join(", ", Known.Select(s => s.Name))}).");

    private static JsonObject Llama3Scaling() => new()
    {
        ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
        ["original_max_position_embeddings"] = 8192,
    };

    /// <summary>(state-dict name, shape) of every tensor LlamaModel loads, under "model." (tied: no lm_head).</summary>
    public IReadOnlyList<(string Name, long[] Shape)> Tensors()
    {
        int d = Hidden, q = Heads * HeadDim, kv = KvHeads * HeadDim, f = Intermediate;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [Vocab, d]) };
        for (var l = 0; l < Layers; l++)
        {
            var p = $"model.layers.{l}";
            list.Add(($"{p}.input_layernorm.weight", [d]));
            list.Add(($"{p}.self_attn.q_proj.weight", [q, d]));
            list.Add(($"{p}.self_attn.k_proj.weight", [kv, d]));
            list.Add(($"{p}.self_attn.v_proj.weight", [kv, d]));
            list.Add(($"{p}.self_attn.o_proj.weight", [d, q]));
            if (QkvBias)
            {
                list.Add(($"{p}.self_attn.q_proj.bias", [q]));
                list.Add(($"{p}.self_attn.k_proj.bias", [kv]));
                list.Add(($"{p}.self_attn.v_proj.bias", [kv]));
            }

            list.Add(($"{p}.post_attention_layernorm.weight", [d]));
            list.Add(($"{p}.mlp.gate_proj.weight", [f, d]));
            list.Add(($"{p}.mlp.up_proj.weight", [f, d]));
            list.Add(($"{p}.mlp.down_proj.weight", [d, f]));
        }

        list.Add(("model.norm.weight", [d]));
        if (!Tied)
            list.Add(("lm_head.weight", [Vocab, d]));
        return list;
    }

    /// <summary>Parameters LlamaModel holds (lm_head excluded).</summary>
    public long Parameters => Tensors().Where(t => !t.Name.StartsWith("lm_head", StringComparison.Ordinal)).Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));

    public long EmbeddingParameters => (long)Vocab * Hidden;

    /// <summary>
    /// Rough float32 activation bytes autograd keeps for one training step through the whole decoder: per layer and
    /// token about 16 d + 5 intermediate floats (norms, q/k/v, rotary copies, repeated k/v, attention output,
    /// residuals, gate/up/silu/product) plus the attention scores and probabilities (3 × heads × S² per example).
    /// </summary>
    public double ActivationBytes(int batch, int length) =>
        4.0 * Layers * ((double)batch * length * (16.0 * Hidden + 5.0 * Intermediate) + 3.0 * batch * Heads * (double)length * length);

    /// <summary>Estimated training-process bytes per method (weights, gradients, AdamW moments, activations).</summary>
    public double EstimateBytes(string method, int batch, int length, int weightBytes) => method switch
    {
        // fp32 weights + grads + AdamW m and v: 16 B per parameter.
        "full" => 16.0 * Parameters + ActivationBytes(batch, length),
        "lora" => (double)weightBytes * Parameters + ActivationBytes(batch, length),
        _ => (double)weightBytes * Parameters + 4.0 * (Layers + 1) * 64.0 * Hidden * length, // forward only, batches of ≤ 4096 tokens
    };
}
