using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Llama;

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>
/// A Llama-family decoder (LlamaModel: no lm_head, which READ heads do not need) returning every hidden state:
/// the token embeddings, then each layer's output, the last one after the final norm — transformers'
/// <c>output_hidden_states</c>, and what llama.cpp returns as per-token embeddings.
/// </summary>
public sealed class LlamaModel : nn.Module<Tensor, Tensor, Tensor[]>, IBackboneModel
{
    private readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly LlamaRmsNorm norm;
    private readonly LlamaRotary rotary;
    private readonly ScalarType computeDtype;

    /// <summary>Float32 weights and compute on the CPU.</summary>
    public LlamaModel(LlamaConfig config) : this(config, LlamaPrecision.Float32Cpu)
    {
    }

    /// <param name="precision">Storage and compute dtypes, and where the parameters are allocated: weights are read straight into it.</param>
    internal LlamaModel(LlamaConfig config, LlamaPrecision precision) : base(nameof(LlamaModel))
    {
        Config = config;
        computeDtype = precision.Compute;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize, dtype: precision.Storage, device: precision.Device);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config, precision)).ToArray());
        norm = new LlamaRmsNorm(config.HiddenSize, config.RmsNormEps, precision);
        rotary = new LlamaRotary(config);
        RegisterComponents();
    }

    public LlamaConfig Config { get; }

    public BackboneShape Shape => new(Config.HiddenSize, Config.NumHiddenLayers, Config.MaxInputLength);

    nn.Module IBackboneModel.Module => this;

    public Tensor[] Forward(EncodedBatch batch) => call(batch.InputIds, batch.AttentionMask);

    /// <summary>(B, S) right-padded ids and mask in; L + 1 float32 tensors of (B, S, d) out.</summary>
    public override Tensor[] forward(Tensor inputIds, Tensor attentionMask)
    {
        using var scope = NewDisposeScope();
        var s = inputIds.shape[1];
        var maskBias = MaskBias(attentionMask, computeDtype);
        var (cos, sin) = rotary.Angles(s, computeDtype, inputIds.device);

        var h = Embed(embed_tokens, inputIds, computeDtype);
        var states = new List<Tensor>(layers.Count + 1) { h };
        for (var i = 0; i < layers.Count; i++)
        {
            h = layers[i].call(h, cos, sin, maskBias);
            states.Add(i == layers.Count - 1 ? norm.call(h) : h);
        }

        return states.Select(t => (computeDtype == ScalarType.Float32 ? t : t.to_type(ScalarType.Float32)).MoveToOuterDisposeScope()).ToArray();
    }

    /// <summary>The token embeddings in the compute dtype: only the looked-up rows are widened, never the whole table.</summary>
    internal static Tensor Embed(Embedding table, Tensor inputIds, ScalarType computeDtype)
    {
        var rows = table.call(inputIds);
        if (rows.dtype == computeDtype)
            return rows;
        using (rows)
            return rows.to_type(computeDtype);
    }

    /// <summary>
    /// (B, 1, S, S) additive mask, causal and padded keys masked: position i sees keys j ≤ i that are real tokens. Right
    /// padding keeps key 0 real for every row, so no row is fully masked. Shared with <see cref="LlamaLayerStream"/>.
    /// </summary>
    internal static Tensor MaskBias(Tensor attentionMask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var s = attentionMask.shape[1];
        var causal = ones(s, s, dtype: ScalarType.Bool, device: attentionMask.device).tril(); // (S, S)
        var keys = attentionMask.to_type(ScalarType.Bool).unsqueeze(1).unsqueeze(1); // (B, 1, 1, S)
        var allowed = causal.unsqueeze(0).unsqueeze(0).logical_and(keys); // (B, 1, S, S)
        return zeros(allowed.shape, dtype: dtype, device: attentionMask.device).Filled(allowed.logical_not(), MinValue(dtype)).MoveToOuterDisposeScope();
    }

    private static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.38e38,
        _ => float.MinValue,
    };
}
