namespace Read.Domain.Tenants;

/// <summary>A customer account. Every other row belongs to exactly one tenant.</summary>
public sealed class Tenant
{
    public required Guid Id { get; init; }
    public required string Name { get; set; }
    public required DateTime CreatedAt { get; init; }
}
