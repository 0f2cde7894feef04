namespace Read.Domain.Backbones.Llama;

/// <summary>
/// Llama-family adaptable projections, by their Hugging Face names (PEFT's target_modules): the four attention
/// projections and the three SwiGLU ones.
/// </summary>
public static class LlamaLoraTargets
{
    /// <summary>Layer modules live under this path (layers.{i}, the state-dict names without "model.").</summary>
    public static string LayerPath(int layer) => $"layers.{layer}";

    public static LoraTargets Targets { get; } = new(
        [
            ("q_proj", "self_attn.q_proj"), ("k_proj", "self_attn.k_proj"), ("v_proj", "self_attn.v_proj"), ("o_proj", "self_attn.o_proj"),
            ("gate_proj", "mlp.gate_proj"), ("up_proj", "mlp.up_proj"), ("down_proj", "mlp.down_proj"),
        ],
        ["q_proj", "v_proj"]);
}
