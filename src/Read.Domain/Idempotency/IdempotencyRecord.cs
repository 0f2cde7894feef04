namespace Read.Domain.Idempotency;

/// <summary>
/// An <c>Idempotency-Key</c> a tenant sent with a creating request: the request's hash and the resource it created, so a
/// retry returns that resource instead of creating another.
/// </summary>
public sealed class IdempotencyRecord
{
    public const int MaxKeyLength = 255;

    public required Guid TenantId { get; init; }
    /// <summary>Which endpoint the key was used on ("files", "fine_tuning_jobs"): one key may be reused across endpoints.</summary>
    public required string Scope { get; init; }
    public required string Key { get; init; }
    /// <summary>SHA-256 of the request body (and for uploads the file name and purpose): a different request under the same key is refused.</summary>
    public required string RequestHash { get; init; }
    public required string ResourceId { get; init; }
    public required DateTime CreatedAt { get; init; }
}
