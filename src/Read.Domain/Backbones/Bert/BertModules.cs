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

    public BertEmbeddings(BertConfig config) : base(nameof(BertEmbeddings))
    {
        word_embeddings = nn.Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId);
        position_embeddings = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = nn.Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor inputIds, Tensor tokenTypeIds)
    {
        using var scope = NewDisposeScope();
        var positions = arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0); // (1, S)
        var sum = word_embeddings.call(inputIds) + position_embeddings.call(positions) + token_type_embeddings.call(tokenTypeIds); // (B, S, d)
        return LayerNorm.call(sum).MoveToOuterDisposeScope();
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

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = nn.Linear(config.HiddenSize, config.HiddenSize);
        key = nn.Linear(config.HiddenSize, config.HiddenSize);
        value = nn.Linear(config.HiddenSize, config.HiddenSize);
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
        var q = Split(query.call(hidden));
        var k = Split(key.call(hidden));
        var v = Split(value.call(hidden));
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

    public BertResidualOutput(int inputSize, BertConfig config) : base(nameof(BertResidualOutput))
    {
        dense = nn.Linear(inputSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor residual)
    {
        using var projected = dense.call(hidden);
        using var sum = projected + residual;
        return LayerNorm.call(sum);
    }
}

internal sealed class BertAttention : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig config) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(config);
        output = new BertResidualOutput(config.HiddenSize, config);
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

    public BertIntermediate(BertConfig config) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(config.HiddenSize, config.IntermediateSize);
        activation = config.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var projected = dense.call(hidden);
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
        var inner = (x + x.pow(3) * 0.044715) * Math.Sqrt(2.0 / Math.PI);
        return (x * 0.5 * (inner.tanh() + 1.0)).MoveToOuterDisposeScope();
    }
}

internal sealed class BertLayer : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config);
        output = new BertResidualOutput(config.IntermediateSize, config);
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

    public BertEncoder(BertConfig config) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
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
