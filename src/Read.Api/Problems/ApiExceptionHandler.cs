using Microsoft.AspNetCore.Diagnostics;

namespace Read.Api.Problems;

/// <summary>Turns request-reading failures (bad JSON, oversize bodies) into ProblemDetails instead of bare status codes or 500s.</summary>
internal sealed class ApiExceptionHandler(ILogger<ApiExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        switch (exception)
        {
            case BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } e:
                await ApiProblems.Write(context, StatusCodes.Status413PayloadTooLarge, "payload_too_large", "Payload too large", e.Message);
                return true;
            case BadHttpRequestException e:
                await ApiProblems.Write(context, e.StatusCode, "invalid_request", "Bad request", e.InnerException?.Message ?? e.Message);
                return true;
            default:
                logger.LogError(exception, "Unhandled error on {Path}", context.Request.Path);
                await ApiProblems.Write(context, StatusCodes.Status500InternalServerError, "internal_error", "Internal error",
                    "The server failed to handle this request; it has been logged.");
                return true;
        }
    }
}
