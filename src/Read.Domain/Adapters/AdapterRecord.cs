using Read.Domain.Persistence;

namespace Read.Domain.Adapters;

/// <summary>A published adapter: its artifact bytes (small) live in the database so any API instance can serve them.</summary>
public sealed class AdapterRecord : ITenantListed
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string JobId { get; init; }
    public required string BackboneId { get; init; }
    public required string BackboneWeightsHash { get; init; }
    /// <summary>adapter_config.json as stored in the artifact.</summary>
    public required string ConfigJson { get; init; }
    public required string MetricsJson { get; init; }
    public required byte[] Artifact { get; init; }
    public required long SizeBytes { get; init; }
    public required string Sha256 { get; init; }
    public required DateTime CreatedAt { get; init; }
}
