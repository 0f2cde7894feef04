namespace Read.Domain.Persistence;

/// <summary>A row a tenant lists newest first, paged by the id of the last row seen (see Read.Api's PageRequest).</summary>
public interface ITenantListed
{
    string Id { get; }
    Guid TenantId { get; }
    DateTime CreatedAt { get; }
}
