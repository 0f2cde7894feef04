using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Bert;

// Field names are the Hugging Face BERT state-dict keys, so a checkpoint loads by name.
#pragma warning disable IDE1006

/// <summary>word + position + token-type embeddings, then LayerNorm.</summary>
internal sealed class BertEmbeddings : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly ScalarType computeDtype;

    public BertEmbeddings(BertConfig config, BertPrecision precision) : base(nameof(BertEmbeddings))
    {
        var (dtype, device) = (precision.Storage, precision.Device);
        word_embeddings = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId, dtype: dtype, device: device);
        position_embeddings = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize, dtype: dtype, device: device);
        token_type_embeddings = nn.Embedding(config.TypeVocabSize, config.HiddenSize, dtype: dtype, device: device);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: dtype, device: device);
        computeDtype = precision.Compute;
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        var positions = KeptScalars.Range(inputIds.shape[1], ScalarType.Int64, inputIds.device).unsqueeze(0); // (1, S)
        var sum = word_embeddings.call(inputIds).to_type(computeDtype).Plus(position_embeddings.call(positions).to_type(computeDtype))
            .Plus(token_type_embeddings.call(tokenTypeIds).to_type(computeDtype)); // (B, S, d)
        return BertPrecision.Norm(LayerNorm, sum).MoveToOuterDisposeScope();
    }
}

/// <summary>Multi-head self-attention projections (<c>attention.self</c>).</summary>
internal sealed class BertSelfAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int heads;
    private readonly int headSize;

    public BertSelfAttention(BertConfig config, BertPrecision precision) : base(nameof(BertSelfAttention))
    {
        query = precision.Linear(config.HiddenSize, config.HiddenSize);
        key = precision.Linear(config.HiddenSize, config.HiddenSize);
        value = precision.Linear(config.HiddenSize, config.HiddenSize);
        heads = config.NumAttentionHeads;
        headSize = config.HiddenSize / config.NumAttentionHeads;
        RegisterComponents();
    }

    /// <param name="hidden">(B, S, d)</param>
    /// <param name="maskBias">(B, 1, 1, S): 0 for real tokens, a large negative number for padding.</param>
    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], s = hidden.shape[1];
        Tensor Split(Tensor x) => x.view(b, s, heads, headSize).transpose(1, 2); // (B, H, S, dh)
        var q = Split(BertPrecision.Project(query, hidden));
        var k = Split(BertPrecision.Project(key, hidden));
        var v = Split(BertPrecision.Project(value, hidden));
        // libtorch's fused kernel: softmax(q·kᵀ/√dh + maskBias)·v without materialising the scores in managed code.
        var context = nn.functional.scaled_dot_product_attention(q, k, v, maskBias); // (B, H, S, dh)
        return context.transpose(1, 2).reshape(b, s, heads * headSize).MoveToOuterDisposeScope(); // (B, S, d)
    }
}

/// <summary>Projection after attention, residual, LayerNorm (<c>attention.output</c>, <c>output</c>).</summary>
internal sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(int inputSize, BertConfig config, BertPrecision precision) : base(nameof(BertResidualOutput))
    {
        dense = precision.Linear(inputSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, dtype: precision.Storage, device: precision.Device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var projected = BertPrecision.Project(dense, hidden);
        using var sum = projected.Plus(residual);
        return BertPrecision.Norm(LayerNorm, sum);
    }
}

internal sealed class BertAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig config, BertPrecision precision) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(config, precision);
        output = new BertResidualOutput(config.HiddenSize, config, precision);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var context = self.call(hidden, maskBias);
        return output.call(context, hidden);
    }
}

internal sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly string activation;

    public BertIntermediate(BertConfig config, BertPrecision precision) : base(nameof(BertIntermediate))
    {
        dense = precision.Linear(config.HiddenSize, config.IntermediateSize);
        activation = config.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var projected = BertPrecision.Project(dense, hidden);
        return activation switch
        {
            "relu" => nn.functional.relu(projected),
            "gelu_new" or "gelu_pytorch_tanh" => GeluTanh(projected),
            _ => nn.functional.gelu(projected),
        };
    }

    private static Tensor GeluTanh(Tensor x)
    {
        using var scope = NewDisposeScope();
        var inner = x.Plus(x.Power(3).Times(0.044715)).Times(Math.Sqrt(2.0 / Math.PI));
        return x.Times(0.5).mul(inner.tanh().Plus(1.0)).MoveToOuterDisposeScope();
    }
}

internal sealed class BertLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig config, BertPrecision precision) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config, precision);
        intermediate = new BertIntermediate(config, precision);
        output = new BertResidualOutput(config.IntermediateSize, config, precision);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor maskBias)
    {
        using var attended = attention.call(hidden, maskBias);
        using var expanded = intermediate.call(attended);
        return output.call(expanded, attended);
    }
}

internal sealed class BertEncoder : nn.Module<Tensor, Tensor, Tensor[]>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig config, BertPrecision precision) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config, precision)).ToArray());
        RegisterComponents();
    }

    /// <summary>Returns the output of every layer, each (B, S, d).</summary>
    public override Tensor[] forward(Tensor hidden, Tensor maskBias)
    {
        var outputs = new Tensor[layer.Count];
        var current = hidden;
        for (var i = 0; i < layer.Count; i++)
        {
            current = layer[i].call(current, maskBias);
            outputs[i] = current;
        }

        return outputs;
    }
}

/// <summary>
/// How a BERT backbone holds and computes: weights stored in <see cref="Storage"/> on <see cref="Device"/>, activations
/// in <see cref="Compute"/>. When they differ (bf16-stored weights, fp32 compute on the CPU) each projection and norm
/// widens its weights for the call, so the resident copy stays narrow (docs/decisions/012-devices-and-precision.md).
/// </summary>
internal sealed record BertPrecision(ScalarType Storage, ScalarType Compute, Device Device)
{
    public static BertPrecision Float32Cpu { get; } = new(ScalarType.Float32, ScalarType.Float32, CPU);

    public Linear Linear(int inputs, int outputs) => nn.Linear(inputs, outputs, dtype: Storage, device: Device);

    /// <summary>
    /// The layer stream's precision: one layer is resident at a time, so it is held in the compute dtype, converted
    /// once at load rather than widened on every call (BertLayerStream rounds it through <see cref="Storage"/>).
    /// </summary>
    public BertPrecision Converted => this with { Storage = Compute };

    public static Tensor Project(Linear layer, Tensor x)
    {
        if (layer.weight!.dtype == x.dtype)
            return layer.call(x);
        using var weight = layer.weight.to_type(x.dtype);
        using var bias = layer.bias?.to_type(x.dtype);
        return nn.functional.linear(x, weight, bias);
    }

    public static Tensor Norm(LayerNorm norm, Tensor x)
    {
        if (norm.weight!.dtype == x.dtype)
            return norm.call(x);
        using var weight = norm.weight.to_type(x.dtype);
        using var bias = norm.bias?.to_type(x.dtype);
        return nn.functional.layer_norm(x, [x.shape[^1]], weight, bias, norm.eps);
    }
}
