using Microsoft.AspNetCore.Http.HttpResults;
using Read.Api.Problems;

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
