using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Problems;
using Read.Domain.Idempotency;
using Read.Domain.Persistence;

namespace Read.Api.Idempotency;

/// <summary>
/// <c>Idempotency-Key</c> on creating endpoints: the first request under a key creates the resource and stores the key with
/// it in the same transaction; a retry with the same request gets that resource back (header <c>Idempotent-Replayed</c>), a
/// different request under the same key answers 422 <c>idempotency_key_reused</c>. Keys are per tenant and endpoint, kept
/// as long as the tenant (they are small).
/// </summary>
internal static class IdempotencyKeys
{
    public const string Header = "Idempotency-Key";
    public const string ReplayedHeader = "Idempotent-Replayed";
    public const string Files = "files";
    public const string Jobs = "fine_tuning_jobs";

    /// <summary>The request's key (null when it sent none), or a problem when the header is malformed.</summary>
    public static (string? Key, ProblemHttpResult? Problem) Read(HttpRequest request)
    {
        var values = request.Headers[Header];
        if (values.Count == 0)
            return (null, null);
        var key = values.Count == 1 ? values[0] : null;
        if (string.IsNullOrWhiteSpace(key) || key.Length > IdempotencyRecord.MaxKeyLength || key.Any(char.IsControl))
            return (null, ApiProblems.BadRequest("invalid_idempotency_key",
                $"{Header} must be one value of 1 to {IdempotencyRecord.MaxKeyLength} printable characters."));
        return (key, null);
    }

    public static string Hash(params ReadOnlySpan<byte[]> parts)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var part in parts)
        {
            sha.AppendData(BitConverter.GetBytes(part.Length)); // length-prefixed: ("ab","c") ≠ ("a","bc")
            sha.AppendData(part);
        }

        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <summary>The resource an earlier request under this key created (null if none), or a problem if that request was a different one.</summary>
    public static async Task<(string? ResourceId, ProblemHttpResult? Problem)> FindAsync(
        ReadDbContext db, Guid tenant, string scope, string key, string requestHash, CancellationToken ct)
    {
        var record = await db.IdempotencyKeys.AsNoTracking().SingleOrDefaultAsync(k => k.TenantId == tenant && k.Scope == scope && k.Key == key, ct);
        if (record is null)
            return (null, null);
        if (record.RequestHash != requestHash)
            return (null, ApiProblems.Problem(StatusCodes.Status422UnprocessableEntity, "idempotency_key_reused", "Idempotency key reused",
                $"{Header} '{key}' was already used with a different request; use a new key for a new request."));
        return (record.ResourceId, null);
    }

    public static void Add(ReadDbContext db, Guid tenant, string scope, string key, string requestHash, string resourceId) =>
        db.IdempotencyKeys.Add(new IdempotencyRecord
        {
            TenantId = tenant, Scope = scope, Key = key, RequestHash = requestHash, ResourceId = resourceId, CreatedAt = DateTime.UtcNow,
        });

    /// <summary>Another request under the same key committed first (the primary key on tenant, scope and key).</summary>
    public static bool IsDuplicate(DbUpdateException e) =>
        e.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation }
            or Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 19 };

    public static void MarkReplayed(HttpResponse response) => response.Headers[ReplayedHeader] = "true";
}
