namespace Read.Domain.Tenants;

/// <summary>An API key, stored as its SHA-256 hash; the plaintext is shown once at creation.</summary>
public sealed class ApiKey
{
    public required Guid Id { get; init; }
    public required Guid TenantId { get; init; }
    /// <summary>Lowercase hex SHA-256 of the full key.</summary>
    public required string KeyHash { get; init; }
    /// <summary>The first characters of the key, safe to show in listings and logs.</summary>
    public required string Prefix { get; init; }
    public required DateTime CreatedAt { get; init; }
    public DateTime? RevokedAt { get; set; }
}
