using Microsoft.EntityFrameworkCore;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Domain.Tenants;

/// <summary>
/// Checks a tenant's limits before work is accepted. The checks read then write without a lock, so two requests racing
/// at the limit may both pass: a quota bounds use, it is not a hard reservation.
/// </summary>
public static class TenantQuotas
{
    public sealed record Limits(int? MaxConcurrentJobs, long? MaxStorageBytes);

    public static async Task<Limits> ForAsync(ReadDbContext db, Guid tenantId, QuotaOptions defaults, CancellationToken ct)
    {
        var own = await db.Tenants.AsNoTracking().Where(t => t.Id == tenantId)
            .Select(t => new { t.MaxConcurrentJobs, t.MaxStorageBytes }).SingleAsync(ct);
        return new Limits(own.MaxConcurrentJobs ?? defaults.MaxConcurrentJobs, own.MaxStorageBytes ?? defaults.MaxStorageBytes);
    }

    /// <summary>Null when one more job fits, else the limit it would exceed.</summary>
    public static async Task<int?> ConcurrentJobsExceededAsync(ReadDbContext db, Guid tenantId, QuotaOptions defaults, CancellationToken ct, int additional = 1)
    {
        var limit = (await ForAsync(db, tenantId, defaults, ct)).MaxConcurrentJobs;
        if (limit is null)
            return null;
        var active = await db.Jobs.CountAsync(j => j.TenantId == tenantId && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running), ct);
        return active + additional > limit ? limit : null; // a sweep adds all its trials at once
    }

    /// <summary>Null when <paramref name="additionalBytes"/> more fit, else the limit they would exceed.</summary>
    public static async Task<long?> StorageExceededAsync(ReadDbContext db, Guid tenantId, long additionalBytes, QuotaOptions defaults, CancellationToken ct)
    {
        var limit = (await ForAsync(db, tenantId, defaults, ct)).MaxStorageBytes;
        if (limit is null)
            return null;
        var used = await db.Files.Where(f => f.TenantId == tenantId).SumAsync(f => (long?)f.Bytes, ct) ?? 0;
        return used + additionalBytes > limit ? limit : null;
    }
}
