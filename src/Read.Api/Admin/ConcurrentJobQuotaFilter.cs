using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Problems;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Admin;

/// <summary>Refuses a new job with 429 concurrent_job_limit while the tenant already has its quota of queued and running jobs.</summary>
internal sealed class ConcurrentJobQuotaFilter : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        // From the request's scope: the filter instance itself is built once per endpoint.
        var db = http.RequestServices.GetRequiredService<ReadDbContext>();
        var quotas = http.RequestServices.GetRequiredService<IOptions<QuotaOptions>>();
        if (await TenantQuotas.ConcurrentJobsExceededAsync(db, http.User.GetTenantId(), quotas.Value, http.RequestAborted) is { } limit)
            return ApiProblems.Problem(StatusCodes.Status429TooManyRequests, "concurrent_job_limit", "Too many requests",
                $"This tenant may have at most {limit} queued or running jobs; wait for one to finish or cancel one.");
        return await next(context);
    }
}
