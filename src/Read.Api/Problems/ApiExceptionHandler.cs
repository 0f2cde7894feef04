using System.Text.Json;
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
            // A variant name outside its enum (cell, pooling, ...): the JSON converter says which names are valid, the
            // path says which field, and the code is the one every other hyperparameter error gets.
            case BadHttpRequestException { InnerException: JsonException { Path: { } path } json } e
                when path.StartsWith("$.hyperparameters.", StringComparison.Ordinal) && json.Message.StartsWith("The value must be one of", StringComparison.Ordinal):
                var error = $"{path["$.hyperparameters.".Length..]} {json.Message["The value ".Length..]}";
                await ApiProblems.Problem(e.StatusCode, "invalid_hyperparameters", "Bad request", error,
                    new Dictionary<string, object?> { ["errors"] = new[] { error } }).ExecuteAsync(context);
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
