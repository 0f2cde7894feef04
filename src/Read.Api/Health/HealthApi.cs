using Microsoft.AspNetCore.Diagnostics.HealthChecks;

namespace Read.Api.Health;

internal static class HealthApi
{
    /// <summary>/healthz: the process answers. /readyz: and its database is reachable.</summary>
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") }).AllowAnonymous();
        return app;
    }
}
