using System.Text.Json;
using System.Text.Json.Serialization;
using Read.Domain.Configuration;
using Read.Domain.SideNetwork;

namespace Read.Domain.Backbones;

/// <summary>
/// A family of checkpoints that share one model implementation (its folder under <c>Backbones/</c>). Picked from
/// <c>config.json</c>'s <c>model_type</c>; adding one is a new folder plus a line in <see cref="BackboneArchitectures"/>.
/// </summary>
[JsonConverter(typeof(JsonEnumConverter<BackboneArchitecture>))]
public enum BackboneArchitecture
{
    /// <summary>BERT-family encoders (model_type bert): MiniLM, arctic-embed, BERT itself.</summary>
    Bert,

    /// <summary>Llama-layout decoders (model_type llama, mistral, qwen2): RMSNorm, rotary positions, SwiGLU, GQA.</summary>
    Llama,
}

/// <summary>Which architecture reads a <c>model_type</c>.</summary>
public static class BackboneArchitectures
{
    private static readonly Dictionary<string, BackboneArchitecture> ByModelType = new(StringComparer.Ordinal)
    {
        ["bert"] = BackboneArchitecture.Bert,
        ["llama"] = BackboneArchitecture.Llama,
        ["mistral"] = BackboneArchitecture.Llama,
        ["qwen2"] = BackboneArchitecture.Llama,
    };

    public static IReadOnlyCollection<string> SupportedModelTypes => ByModelType.Keys;

    /// <summary>The architecture of a model_type (an empty one is a BERT checkpoint, as older exports leave it out).</summary>
    public static BackboneArchitecture? ForModelType(string? modelType) =>
        string.IsNullOrEmpty(modelType) ? BackboneArchitecture.Bert : ByModelType.TryGetValue(modelType, out var a) ? a : null;

    /// <summary>
    /// Poolings a head can use on this architecture: an encoder's first token ([CLS]) sees the whole input; a causal
    /// decoder's last non-padding token is the one that does (what LlamaForSequenceClassification reads).
    /// </summary>
    public static IReadOnlyList<Pooling> Poolings(BackboneArchitecture architecture) => architecture switch
    {
        BackboneArchitecture.Bert => [Pooling.Mean, Pooling.Cls],
        BackboneArchitecture.Llama => [Pooling.Mean, Pooling.Last],
        _ => throw new ArgumentOutOfRangeException(nameof(architecture)),
    };

    /// <summary>The projections LoRA baselines may adapt on this architecture (declared in its folder).</summary>
    public static LoraTargets LoraTargets(BackboneArchitecture architecture) => architecture switch
    {
        BackboneArchitecture.Bert => Bert.BertLoraTargets.Targets,
        BackboneArchitecture.Llama => Llama.LlamaLoraTargets.Targets,
        _ => throw new ArgumentOutOfRangeException(nameof(architecture)),
    };
}
