using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Read.Api.Problems;
using Read.Domain.Persistence;

namespace Read.Api.Paging;

/// <summary>
/// Cursor paging shared by list endpoints: newest first, <c>limit</c> (1–100, default 20) items after the item whose id
/// is <c>after</c>. A cursor is an id, not an offset, so rows created meanwhile never shift a page.
/// </summary>
internal static class PageRequest
{
    public const int DefaultLimit = 20;
    public const int MaxLimit = 100;

    public static ProblemHttpResult? Validate(int? limit) =>
        limit is null or (>= 1 and <= MaxLimit)
            ? null
            : ApiProblems.BadRequest("invalid_limit", $"limit must be between 1 and {MaxLimit}.");

    public static ProblemHttpResult UnknownCursor(string after) =>
        ApiProblems.BadRequest("invalid_cursor", $"'after' must be the id of an item of this list; '{after}' is not.");

    /// <summary>
    /// One page of the tenant's rows of <paramref name="rows"/>, newest first (ties by id), after the row whose id is
    /// <paramref name="after"/>; a problem for a bad limit or an unknown cursor. Every tenant list pages this way.
    /// </summary>
    public static async Task<(Page<T>? Page, ProblemHttpResult? Problem)> NewestFirstAsync<T>(
        IQueryable<T> rows, Guid tenant, int? limit, string? after, CancellationToken ct) where T : class, ITenantListed
    {
        if (Validate(limit) is { } bad)
            return (null, bad);
        var take = limit ?? DefaultLimit;
        var query = rows.AsNoTracking().Where(r => r.TenantId == tenant);
        if (after is not null)
        {
            var cursor = await query.Where(r => r.Id == after).Select(r => (DateTime?)r.CreatedAt).FirstOrDefaultAsync(ct);
            if (cursor is not { } c)
                return (null, UnknownCursor(after));
            query = query.Where(r => r.CreatedAt < c || (r.CreatedAt == c && string.Compare(r.Id, after) < 0));
        }

        var page = await query.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id).Take(take + 1).ToListAsync(ct);
        return (From(page, take), null);
    }

    /// <summary>Splits a query result fetched with <c>limit + 1</c> rows into the page and whether more follow.</summary>
    public static Page<T> From<T>(List<T> rows, int limit)
    {
        var hasMore = rows.Count > limit;
        if (hasMore)
            rows.RemoveAt(rows.Count - 1);
        return new Page<T>("list", rows, hasMore);
    }
}

/// <summary>One page of a list; pass the last item's id as <c>after</c> for the next one while <c>has_more</c>.</summary>
internal sealed record Page<T>(string Object, IReadOnlyList<T> Data, bool HasMore);
