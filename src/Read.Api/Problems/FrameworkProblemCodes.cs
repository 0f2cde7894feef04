namespace Read.Api.Problems;

/// <summary>Stable codes for the statuses that ASP.NET Core and Kestrel answer by themselves, before any handler runs.</summary>
internal static class FrameworkProblemCodes
{
    public static (string Code, string Detail) For(int status) => status switch
    {
        StatusCodes.Status400BadRequest => ("invalid_request", "The request could not be read."),
        StatusCodes.Status401Unauthorized => ("unauthorized", "Send 'Authorization: Bearer <api key>'."),
        StatusCodes.Status403Forbidden => ("forbidden", "This key may not use this endpoint."),
        StatusCodes.Status404NotFound => ("not_found", "No such endpoint."),
        StatusCodes.Status405MethodNotAllowed => ("method_not_allowed", "This endpoint does not accept that method."),
        StatusCodes.Status413PayloadTooLarge => ("payload_too_large", "The request body is larger than this endpoint accepts."),
        StatusCodes.Status415UnsupportedMediaType => ("unsupported_media_type",
            "Send JSON bodies as application/json (datasets to /v1/files as multipart/form-data)."),
        >= 500 => ("internal_error", "The server failed to handle this request; it has been logged."),
        _ => ("http_" + status, "The request failed."),
    };
}
