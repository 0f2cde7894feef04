using Read.Domain.SideNetwork;
namespace Read.Domain.Backbones;

/// <summary>What <c>GET /v1/backbones</c> shows about one backbone.</summary>
/// <param name="Architecture">config.json's model_type (bert, llama, mistral, qwen2).</param>
/// <param name="Dtype">What the backbone computes in (float32, bfloat16, float16).</param>
public sealed record BackboneInfo(string Id, string Architecture, int Layers, int HiddenSize, long Parameters, int MaxPositions, string Dtype = "float32")
{
    /// <summary>The poolings a job on this backbone may ask for.</summary>
    public IReadOnlyList<Pooling> Poolings => BackboneArchitectures.Poolings(BackboneArchitectures.ForModelType(Architecture) ?? BackboneArchitecture.Bert);
}
