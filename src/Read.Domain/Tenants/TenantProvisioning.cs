using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Domain.Tenants;

/// <summary>Creates tenants and their keys; shared by the admin endpoint and the embedded development tenant.</summary>
public static class TenantProvisioning
{
    public sealed record CreatedTenant(Tenant Tenant, string ApiKey);

    public static async Task<CreatedTenant> CreateTenantAsync(ReadDbContext db, string name, string? apiKey = null, CancellationToken ct = default)
    {
        var now = DateTime.UtcNow;
        var tenant = new Tenant { Id = Guid.NewGuid(), Name = name, CreatedAt = now };
        var key = apiKey ?? ApiKeys.Generate();
        db.Tenants.Add(tenant);
        db.ApiKeys.Add(new ApiKey
        {
            Id = Guid.NewGuid(),
            TenantId = tenant.Id,
            KeyHash = ApiKeys.Hash(key),
            Prefix = ApiKeys.DisplayPrefix(key),
            CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
        return new CreatedTenant(tenant, key);
    }

    /// <summary>Returns the tenant that owns <paramref name="apiKey"/>, creating it (named <paramref name="name"/>) if no tenant does.</summary>
    public static async Task<Tenant> EnsureTenantWithKeyAsync(ReadDbContext db, string name, string apiKey, CancellationToken ct = default)
    {
        var hash = ApiKeys.Hash(apiKey);
        var tenantId = await db.ApiKeys.Where(k => k.KeyHash == hash).Select(k => (Guid?)k.TenantId).FirstOrDefaultAsync(ct);
        if (tenantId is { } id)
            return await db.Tenants.SingleAsync(t => t.Id == id, ct);
        return (await CreateTenantAsync(db, name, apiKey, ct)).Tenant;
    }
}
