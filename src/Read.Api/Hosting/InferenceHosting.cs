using System.Globalization;
using System.Security.Claims;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Read.Api.Adapters;
using Read.Api.Authentication;
using Read.Api.Inference;
using Read.Api.Problems;

namespace Read.Api.Hosting;

/// <summary>The predict path's services (batcher, adapter cache), rate limits, and the Prometheus /metrics endpoint.</summary>
internal static class InferenceHosting
{
    public static void AddReadInference(this IServiceCollection services)
    {
        services.AddOptions<InferenceOptions>().BindConfiguration(InferenceOptions.Section)
            .Validate(o => o.IsValid(), "Read:Inference: delays must be >= 0, sizes and limits positive, MaxTopK >= DefaultTopK")
            .ValidateOnStart();
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.Section)
            .Validate(o => o.IsValid(), "Read:RateLimits: every PermitLimit and WindowSeconds must be positive")
            .ValidateOnStart();
        services.AddSingleton<InferenceMetrics>();
        services.AddSingleton<InferenceBatcher>();
        services.AddSingleton<LoadedAdapterCache>();

        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(Partition);
            o.OnRejected = async (rejected, _) =>
            {
                var context = rejected.HttpContext;
                if (rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter))
                    context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
                var (code, detail) = Classify(context) == Limited.FailedAuthentication
                    ? ("too_many_failed_authentications", "Too many requests with invalid credentials from this address; retry after the Retry-After delay.")
                    : ("rate_limited", "This tenant's rate limit for this kind of request is used up; retry after the Retry-After delay.");
                await ApiProblems.Write(context, StatusCodes.Status429TooManyRequests, code, "Too many requests", detail);
            };
        });

        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            // ASP.NET Core's own meter: http.server.request.duration by route and status (counts and latencies per endpoint).
            .AddMeter(InferenceMetrics.MeterName, "Microsoft.AspNetCore.Hosting")
            .AddPrometheusExporter());
    }

    /// <summary>Between authentication and authorization: the tenant is known, and a bad key is counted before its 401.</summary>
    public static void UseReadRateLimits(this WebApplication app) => app.UseRateLimiter();

    public static void MapReadMetrics(this WebApplication app)
    {
        // Unauthenticated, as Prometheus scrapes: the instruments carry no tenant or adapter ids.
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapPredictApi();
    }

    private enum Limited { None, Predict, Uploads, Jobs, FailedAuthentication }

    private static Limited Classify(HttpContext context)
    {
        if (context.User.Identity?.IsAuthenticated != true)
            return context.Request.Headers.Authorization.Count > 0 ? Limited.FailedAuthentication : Limited.None;
        if (!HttpMethods.IsPost(context.Request.Method) || context.GetEndpoint() is not RouteEndpoint endpoint)
            return Limited.None;
        return endpoint.RoutePattern.RawText?.TrimEnd('/') switch
        {
            "/v1/predict" or "/v1/adapters/{id}/predict" => Limited.Predict,
            "/v1/files" => Limited.Uploads,
            "/v1/fine-tuning/jobs" => Limited.Jobs,
            _ => Limited.None,
        };
    }

    private static RateLimitPartition<string> Partition(HttpContext context)
    {
        var options = context.RequestServices.GetRequiredService<IOptionsMonitor<RateLimitOptions>>().CurrentValue;
        var kind = options.Enabled ? Classify(context) : Limited.None;
        if (kind == Limited.None)
            return RateLimitPartition.GetNoLimiter("none");
        if (kind == Limited.FailedAuthentication)
            return Window($"auth:{context.Connection.RemoteIpAddress}", options.FailedAuthentication);
        var tenant = context.User.FindFirstValue(TenantClaims.TenantId);
        if (tenant is null)
            return RateLimitPartition.GetNoLimiter("admin"); // the operator's key is not a tenant
        options.Tenants.TryGetValue(tenant, out var own);
        var rule = kind switch
        {
            Limited.Predict => own?.Predict ?? options.Predict,
            Limited.Uploads => own?.Uploads ?? options.Uploads,
            _ => own?.Jobs ?? options.Jobs,
        };
        // The rule is part of the key, so a configuration change starts a fresh window rather than keeping the old limit.
        return Window($"{kind}:{tenant}:{rule.PermitLimit}/{rule.WindowSeconds}", rule);
    }

    private static RateLimitPartition<string> Window(string key, RateLimitRule rule) =>
        RateLimitPartition.GetFixedWindowLimiter(key, _ => new FixedWindowRateLimiterOptions
        {
            PermitLimit = rule.PermitLimit,
            Window = TimeSpan.FromSeconds(rule.WindowSeconds),
            QueueLimit = 0,
        });
}
