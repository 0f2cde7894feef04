using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Authentication;
using Read.Api.Paging;
using Read.Api.Problems;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Admin;

internal static class AdminApi
{
    public sealed record CreateTenantRequest(string Name);

    public sealed record CreateTenantResponse(Guid TenantId, string Name, string ApiKey, DateTime CreatedAt);

    public sealed record TenantResponse(Guid Id, string Object, string Name, DateTime CreatedAt, int? MaxConcurrentJobs, long? MaxStorageBytes, int ActiveKeys);

    public sealed record KeyResponse(Guid Id, string Object, string Prefix, DateTime CreatedAt, DateTime? RevokedAt);

    public sealed record CreateKeyRequest(bool RevokeExisting = false);

    /// <summary>The new key in plaintext, shown once.</summary>
    public sealed record CreatedKeyResponse(Guid Id, string Object, string Prefix, DateTime CreatedAt, string ApiKey, int RevokedKeys);

    /// <summary>A tenant's own limits; null falls back to the Read:Quotas default.</summary>
    public sealed record QuotaRequest(int? MaxConcurrentJobs, long? MaxStorageBytes);

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/admin").WithTags("Admin").RequireAuthorization(AuthPolicies.Admin);
        group.MapPost("/tenants", CreateTenant)
            .WithSummary("Create a tenant and its first API key (shown once). Needs the admin key.");
        group.MapGet("/tenants", ListTenants).WithSummary("Tenants, newest first (limit, after).");
        group.MapGet("/tenants/{id:guid}/keys", ListKeys).WithSummary("A tenant's API keys (prefixes only), revoked ones included.");
        group.MapPost("/tenants/{id:guid}/keys", CreateKey)
            .WithSummary("Rotate: issue a new key (shown once); revoke_existing revokes the tenant's other keys in the same transaction.");
        group.MapDelete("/keys/{keyId:guid}", RevokeKey).WithSummary("Revoke a key; it answers 401 from the next request on.");
        group.MapPut("/tenants/{id:guid}/quotas", SetQuotas).WithSummary("Set a tenant's max concurrent jobs and storage bytes (null: the default).");
        return app;
    }

    internal static async Task<Results<Created<CreateTenantResponse>, ProblemHttpResult>> CreateTenant(
        CreateTenantRequest request, ReadDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200)
            return ApiProblems.BadRequest("invalid_name", "A tenant needs a name of 1 to 200 characters.");
        if (!StorableText.IsValid(request.Name))
            return ApiProblems.BadRequest("invalid_characters", "The tenant name contains a NUL character or an unpaired surrogate.");
        var created = await TenantProvisioning.CreateTenantAsync(db, request.Name.Trim(), ct: ct);
        return TypedResults.Created($"/v1/admin/tenants/{created.Tenant.Id}",
            new CreateTenantResponse(created.Tenant.Id, created.Tenant.Name, created.ApiKey, created.Tenant.CreatedAt));
    }

    internal static async Task<Results<Ok<Page<TenantResponse>>, ProblemHttpResult>> ListTenants(
        ReadDbContext db, int? limit, Guid? after, CancellationToken ct)
    {
        if (PageRequest.Validate(limit) is { } bad)
            return bad;
        var take = limit ?? PageRequest.DefaultLimit;
        var query = db.Tenants.AsNoTracking();
        if (after is { } afterId)
        {
            var cursor = await query.Where(t => t.Id == afterId).Select(t => (DateTime?)t.CreatedAt).FirstOrDefaultAsync(ct);
            if (cursor is not { } c)
                return PageRequest.UnknownCursor(afterId.ToString());
            // Ties on created_at are broken by id; Guid order is the provider's, but consistent within one database.
            query = query.Where(t => t.CreatedAt < c || (t.CreatedAt == c && t.Id.CompareTo(afterId) < 0));
        }
        var rows = await query.OrderByDescending(t => t.CreatedAt).ThenByDescending(t => t.Id).Take(take + 1)
            .Select(t => new TenantResponse(t.Id, "tenant", t.Name, t.CreatedAt, t.MaxConcurrentJobs, t.MaxStorageBytes,
                db.ApiKeys.Count(k => k.TenantId == t.Id && k.RevokedAt == null)))
            .ToListAsync(ct);
        return TypedResults.Ok(PageRequest.From(rows, take));
    }

    internal static async Task<Results<Ok<Page<KeyResponse>>, ProblemHttpResult>> ListKeys(Guid id, ReadDbContext db, CancellationToken ct)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == id, ct))
            return ApiProblems.NotFound("tenant", id.ToString());
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.TenantId == id).OrderByDescending(k => k.CreatedAt)
            .Select(k => new KeyResponse(k.Id, "api_key", k.Prefix, k.CreatedAt, k.RevokedAt)).ToListAsync(ct);
        return TypedResults.Ok(new Page<KeyResponse>("list", keys, false));
    }

    internal static async Task<Results<Created<CreatedKeyResponse>, ProblemHttpResult>> CreateKey(
        Guid id, CreateKeyRequest? request, ReadDbContext db, CancellationToken ct)
    {
        if (!await db.Tenants.AnyAsync(t => t.Id == id, ct))
            return ApiProblems.NotFound("tenant", id.ToString());
        var now = DateTime.UtcNow;
        var plaintext = ApiKeys.Generate();
        var key = new ApiKey { Id = Guid.NewGuid(), TenantId = id, KeyHash = ApiKeys.Hash(plaintext), Prefix = ApiKeys.DisplayPrefix(plaintext), CreatedAt = now };
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var revoked = request?.RevokeExisting == true
            ? await db.ApiKeys.Where(k => k.TenantId == id && k.RevokedAt == null).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now), ct)
            : 0;
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return TypedResults.Created($"/v1/admin/tenants/{id}/keys", new CreatedKeyResponse(key.Id, "api_key", key.Prefix, now, plaintext, revoked));
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> RevokeKey(Guid keyId, ReadDbContext db, CancellationToken ct)
    {
        // Keys are looked up per request (no cache in ApiKeyAuthenticationHandler), so this takes effect at once.
        var now = DateTime.UtcNow;
        var updated = await db.ApiKeys.Where(k => k.Id == keyId && k.RevokedAt == null).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now), ct);
        if (updated > 0)
            return TypedResults.NoContent();
        return await db.ApiKeys.AnyAsync(k => k.Id == keyId, ct)
            ? ApiProblems.Problem(StatusCodes.Status409Conflict, "key_already_revoked", "Conflict", $"Key '{keyId}' is already revoked.")
            : ApiProblems.NotFound("API key", keyId.ToString());
    }

    internal static async Task<Results<Ok<TenantResponse>, ProblemHttpResult>> SetQuotas(Guid id, QuotaRequest request, ReadDbContext db, CancellationToken ct)
    {
        if (request.MaxConcurrentJobs is < 0 || request.MaxStorageBytes is < 0)
            return ApiProblems.BadRequest("invalid_quota", "Quotas must be zero or more (null: the service default).");
        var updated = await db.Tenants.Where(t => t.Id == id).ExecuteUpdateAsync(s => s
            .SetProperty(t => t.MaxConcurrentJobs, request.MaxConcurrentJobs)
            .SetProperty(t => t.MaxStorageBytes, request.MaxStorageBytes), ct);
        if (updated == 0)
            return ApiProblems.NotFound("tenant", id.ToString());
        var tenant = await db.Tenants.AsNoTracking().Where(t => t.Id == id)
            .Select(t => new TenantResponse(t.Id, "tenant", t.Name, t.CreatedAt, t.MaxConcurrentJobs, t.MaxStorageBytes,
                db.ApiKeys.Count(k => k.TenantId == t.Id && k.RevokedAt == null)))
            .SingleAsync(ct);
        return TypedResults.Ok(tenant);
    }
}
