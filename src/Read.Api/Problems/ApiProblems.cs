using Microsoft.AspNetCore.Http.HttpResults;

namespace Read.Api.Problems;

/// <summary>ProblemDetails with a stable machine-readable <c>code</c> extension: the one error shape of the API.</summary>
internal static class ApiProblems
{
    public static ProblemHttpResult Problem(int status, string code, string title, string detail, IDictionary<string, object?>? extra = null)
    {
        var extensions = new Dictionary<string, object?> { ["code"] = code };
        if (extra is not null)
            foreach (var (k, v) in extra)
                extensions[k] = v;
        return TypedResults.Problem(detail: detail, statusCode: status, title: title, extensions: extensions);
    }

    public static ProblemHttpResult BadRequest(string code, string detail, IDictionary<string, object?>? extra = null) =>
        Problem(StatusCodes.Status400BadRequest, code, "Bad request", detail, extra);

    public static ProblemHttpResult NotFound(string what, string id) =>
        Problem(StatusCodes.Status404NotFound, "not_found", "Not found", $"No {what} '{id}'.");

    public static Task Write(HttpContext context, int status, string code, string title, string detail) =>
        Problem(status, code, title, detail).ExecuteAsync(context);
}
