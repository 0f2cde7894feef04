using System.Text.Json.Serialization;

namespace Read.Domain.Backbones.Bert;

/// <summary>The fields of a Hugging Face BERT <c>config.json</c> that the model code needs.</summary>
public sealed record BertConfig(
    // Rows of the token embedding table.
    [property: JsonPropertyName("vocab_size")] int VocabSize,
    // d: width of every hidden state.
    [property: JsonPropertyName("hidden_size")] int HiddenSize,
    // L: number of transformer layers.
    [property: JsonPropertyName("num_hidden_layers")] int NumHiddenLayers,
    [property: JsonPropertyName("num_attention_heads")] int NumAttentionHeads,
    // Width of the feed-forward block.
    [property: JsonPropertyName("intermediate_size")] int IntermediateSize,
    // Longest sequence the position table covers.
    [property: JsonPropertyName("max_position_embeddings")] int MaxPositionEmbeddings = 512,
    [property: JsonPropertyName("type_vocab_size")] int TypeVocabSize = 2,
    [property: JsonPropertyName("layer_norm_eps")] double LayerNormEps = 1e-12,
    // "gelu" (erf), "gelu_new"/"gelu_pytorch_tanh" (tanh approximation) or "relu".
    [property: JsonPropertyName("hidden_act")] string HiddenAct = "gelu",
    [property: JsonPropertyName("pad_token_id")] int PadTokenId = 0,
    [property: JsonPropertyName("model_type")] string ModelType = "bert",
    // Standard deviation of the normal initialisation (used only when generating weights).
    [property: JsonPropertyName("initializer_range")] double InitializerRange = 0.02)
{
    /// <summary>
    /// A small configuration for tests and the built-in <c>tiny-bert</c> backbone. Its initializer range is BERT's
    /// 0.02 scaled to the width (0.02·√(768/d)), so a random tiny model mixes tokens about as much per layer as a
    /// randomly initialised BERT-base; with a flat 0.02 at width 64 the attention path is ~4x weaker and the
    /// first-token state barely depends on the other tokens.
    /// </summary>
    public static BertConfig Tiny(int vocabSize, int layers = 4, int hiddenSize = 64, int heads = 4, int intermediateSize = 128, int maxPositions = 128) =>
        new(vocabSize, hiddenSize, layers, heads, intermediateSize, maxPositions, 2, 1e-12, "gelu", 0, "bert", 0.02 * Math.Sqrt(768.0 / hiddenSize));

    /// <summary>Errors that make the configuration unusable; empty when it is fine.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (ModelType is not ("bert" or ""))
            errors.Add($"model_type '{ModelType}' is not supported (only 'bert').");
        if (VocabSize < 1 || HiddenSize < 1 || NumHiddenLayers < 1 || NumAttentionHeads < 1 || IntermediateSize < 1 || MaxPositionEmbeddings < 1 || TypeVocabSize < 1)
            errors.Add("All sizes must be positive.");
        else if (HiddenSize % NumAttentionHeads != 0)
            errors.Add($"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}.");
        if (HiddenAct is not ("gelu" or "gelu_new" or "gelu_pytorch_tanh" or "relu"))
            errors.Add($"hidden_act '{HiddenAct}' is not supported.");
        return errors;
    }
}
