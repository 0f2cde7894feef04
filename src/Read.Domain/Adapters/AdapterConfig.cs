using System.Text.Json.Serialization;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;

namespace Read.Domain.Adapters;

/// <summary>adapter_config.json: everything needed to rebuild a READ adapter on its backbone.</summary>
public sealed record AdapterConfig(
    [property: JsonPropertyName("backbone_id")] string BackboneId,
    [property: JsonPropertyName("backbone_weights_hash")] string BackboneWeightsHash,
    // d: backbone width the side network was built for.
    [property: JsonPropertyName("hidden_size")] int HiddenSize,
    [property: JsonPropertyName("cell")] RecurrentCell Cell,
    // Hidden size of the recurrent cell.
    [property: JsonPropertyName("r")] int SideHiddenSize,
    [property: JsonPropertyName("aggregation")] LayerAggregation Aggregation,
    // Backbone layer indices (1-based; 0 would be the embedding output) that feed the recurrence, in order.
    [property: JsonPropertyName("layers")] IReadOnlyList<int> Layers,
    // Label names in head-output order; empty for regression.
    [property: JsonPropertyName("label_names")] IReadOnlyList<string> LabelNames,
    [property: JsonPropertyName("max_length")] int MaxLength,
    [property: JsonPropertyName("tokenizer")] AdapterTokenizerConfig Tokenizer,
    // Kept for artifacts that predate input_norm: true means layernorm.
    [property: JsonPropertyName("input_layer_norm")] bool InputLayerNorm = true,
    // sequence_classification or regression.
    [property: JsonPropertyName("head")] string Head = "sequence_classification",
    // cls (first token), last (last real token) or mean (masked mean over the positions).
    [property: JsonPropertyName("pooling")] Pooling Pooling = Pooling.Cls,
    [property: JsonPropertyName("method")] string Method = "read",
    [property: JsonPropertyName("format_version")] int FormatVersion = AdapterConfig.CurrentFormatVersion,
    // layernorm, rmsnorm or none; null in older artifacts (see input_layer_norm).
    [property: JsonPropertyName("input_norm")] InputNorm? InputNorm = null,
    // zeros or embedding (h_0 = W_0 · norm(φ_0)).
    [property: JsonPropertyName("initial_state")] InitialState InitialState = InitialState.Zeros,
    // L of the backbone the adapter was trained on: the layer whose state is corrected. Null in older artifacts (then max of layers).
    [property: JsonPropertyName("backbone_layers")] int? BackboneLayers = null,
    // Storage type of the activation cache used for training and cached evaluation.
    [property: JsonPropertyName("cache_dtype")] CacheDtype CacheDtype = CacheDtype.Fp16,
    // Regression: the head predicts (y - target_mean) / target_std of the training targets.
    [property: JsonPropertyName("target_mean")] double? TargetMean = null,
    [property: JsonPropertyName("target_std")] double? TargetStd = null,
    // bert or llama (null in artifacts from before decoders: bert), and config.json's model_type.
    [property: JsonPropertyName("architecture")] BackboneArchitecture? Architecture = null,
    [property: JsonPropertyName("model_type")] string? ModelType = null)
{
    public const int CurrentFormatVersion = 1;

    public const string ClassificationHead = "sequence_classification";

    public const string RegressionHead = "regression";

    /// <summary>The input norm in effect, old artifacts included.</summary>
    [JsonIgnore]
    public InputNorm EffectiveInputNorm => InputNorm ?? (InputLayerNorm ? SideNetwork.InputNorm.LayerNorm : SideNetwork.InputNorm.None);

    [JsonIgnore]
    public bool IsRegression => Head == RegressionHead;
}
