using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Llama;

// Field names are the Hugging Face Llama state-dict keys (under "model."), so a checkpoint loads by name.
#pragma warning disable IDE1006

/// <summary>LlamaRMSNorm: x / rms(x) in float32, cast back to x's dtype, times the weight (widened to it if stored narrower).</summary>
internal sealed class LlamaRmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public LlamaRmsNorm(int size, double eps, LlamaPrecision precision) : base(nameof(LlamaRmsNorm))
    {
        weight = nn.Parameter(ones(size, dtype: precision.Storage, device: precision.Device));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to_type(ScalarType.Float32);
        var normed = x32 * x32.Power(2).mean([-1], keepdim: true).Plus(eps).rsqrt();
        var scale = weight.dtype == x.dtype ? weight : weight.to_type(x.dtype);
        return (scale * normed.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Rotary position embeddings (rotate-half convention, as transformers' apply_rotary_pos_emb).</summary>
internal sealed class LlamaRotary
{
    private readonly float[] inverseFrequencies;

    public LlamaRotary(LlamaConfig config) =>
        inverseFrequencies = LlamaRopeScaling.InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling).Select(f => (float)f).ToArray();

    /// <summary>cos and sin of (1, 1, S, head_dim) for positions 0..S-1, computed in float32 and cast to <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Angles(long length, ScalarType dtype, Device device)
    {
        using var scope = NewDisposeScope();
        var positions = KeptScalars.Range(length, ScalarType.Float32, device);
        var inv = tensor(inverseFrequencies, device: device);
        var freqs = outer(positions, inv); // (S, hd/2)
        var emb = cat([freqs, freqs], -1).unsqueeze(0).unsqueeze(0); // (1, 1, S, hd)
        return (emb.cos().to_type(dtype).MoveToOuterDisposeScope(), emb.sin().to_type(dtype).MoveToOuterDisposeScope());
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1); // rotate_half: (-x2, x1)
        return (x * cos).Plus(rotated * sin).MoveToOuterDisposeScope();
    }
}

/// <summary>Grouped-query self-attention (<c>self_attn</c>): q/k/v/o projections, rotary, causal with padding masked.</summary>
internal sealed class LlamaAttention : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
{
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear o_proj;
    private readonly int heads;
    private readonly int kvHeads;
    private readonly int headDim;

    public LlamaAttention(LlamaConfig c, LlamaPrecision precision) : base(nameof(LlamaAttention))
    {
        heads = c.NumAttentionHeads;
        kvHeads = c.NumKeyValueHeads;
        headDim = c.HeadDim;
        q_proj = precision.Linear(c.HiddenSize, heads * headDim, c.QkvBias);
        k_proj = precision.Linear(c.HiddenSize, kvHeads * headDim, c.QkvBias);
        v_proj = precision.Linear(c.HiddenSize, kvHeads * headDim, c.QkvBias);
        o_proj = precision.Linear(heads * headDim, c.HiddenSize, c.OutputBias);
        RegisterComponents();
    }

    /// <param name="x">(B, S, d) in the compute dtype</param>
    /// <param name="cos">(1, 1, S, hd)</param>
    /// <param name="sin">(1, 1, S, hd)</param>
    /// <param name="maskBias">(B, 1, S, S): 0 where a query may attend, the dtype's minimum elsewhere.</param>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor maskBias)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], s = x.shape[1];
        var q = LlamaRotary.Apply(LlamaPrecision.Project(q_proj, x).view(b, s, heads, headDim).transpose(1, 2), cos, sin);
        var k = LlamaRotary.Apply(LlamaPrecision.Project(k_proj, x).view(b, s, kvHeads, headDim).transpose(1, 2), cos, sin);
        var v = LlamaPrecision.Project(v_proj, x).view(b, s, kvHeads, headDim).transpose(1, 2);
        if (heads != kvHeads)
        {
            // transformers' repeat_kv: key/value head i serves query heads i·n .. i·n + n - 1.
            k = k.repeat_interleave(heads / kvHeads, 1);
            v = v.repeat_interleave(heads / kvHeads, 1);
        }

        var attended = nn.functional.scaled_dot_product_attention(q, k, v, maskBias); // (B, H, S, hd), scale 1/√hd
        return LlamaPrecision.Project(o_proj, attended.transpose(1, 2).reshape(b, s, heads * headDim)).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU feed-forward (<c>mlp</c>): down(silu(gate(x)) · up(x)).</summary>
internal sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear gate_proj;
    private readonly Linear up_proj;
    private readonly Linear down_proj;

    public LlamaMlp(LlamaConfig c, LlamaPrecision precision) : base(nameof(LlamaMlp))
    {
        gate_proj = precision.Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias);
        up_proj = precision.Linear(c.HiddenSize, c.IntermediateSize, c.MlpBias);
        down_proj = precision.Linear(c.IntermediateSize, c.HiddenSize, c.MlpBias);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gated = nn.functional.silu(LlamaPrecision.Project(gate_proj, x)) * LlamaPrecision.Project(up_proj, x);
        return LlamaPrecision.Project(down_proj, gated).MoveToOuterDisposeScope();
    }
}

/// <summary>One pre-norm decoder layer (<c>layers.N</c>): x + attn(norm(x)), then h + mlp(norm(h)).</summary>
internal sealed class LlamaDecoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
{
    private readonly LlamaRmsNorm input_layernorm;
    private readonly LlamaAttention self_attn;
    private readonly LlamaRmsNorm post_attention_layernorm;
    private readonly LlamaMlp mlp;

    public LlamaDecoderLayer(LlamaConfig c, LlamaPrecision precision) : base(nameof(LlamaDecoderLayer))
    {
        input_layernorm = new LlamaRmsNorm(c.HiddenSize, c.RmsNormEps, precision);
        self_attn = new LlamaAttention(c, precision);
        post_attention_layernorm = new LlamaRmsNorm(c.HiddenSize, c.RmsNormEps, precision);
        mlp = new LlamaMlp(c, precision);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor cos, Tensor sin, Tensor maskBias)
    {
        using var scope = NewDisposeScope();
        var h = x.Plus(self_attn.call(input_layernorm.call(x), cos, sin, maskBias));
        return h.Plus(mlp.call(post_attention_layernorm.call(h))).MoveToOuterDisposeScope();
    }
}
