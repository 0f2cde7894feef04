using Read.Domain.Persistence;

namespace Read.Domain.Files;

/// <summary>An uploaded JSONL dataset, validated on upload; its bytes live in the database (<see cref="FileChunk"/>, through <see cref="FileContentStore"/>) so any worker can read it.</summary>
public sealed class DatasetFile : ITenantListed
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string FileName { get; init; }
    public required string Purpose { get; init; }
    public required long Bytes { get; init; }
    public required string Sha256 { get; init; }
    public required int ExampleCount { get; init; }
    /// <summary>Distinct labels, sorted ordinally.</summary>
    public required List<string> Labels { get; init; }
    public required bool HasTextPairs { get; init; }
    public required DateTime CreatedAt { get; init; }
}
