using System.Net;
using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.Paging;
using Read.Api.Problems;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Webhooks;

namespace Read.Api.Webhooks;

internal static class WebhooksApi
{
    public sealed record CreateWebhookRequest(string? Url, List<string>? Events);

    /// <summary>An endpoint as listed; the secret appears only in the answer to its creation.</summary>
    public sealed record WebhookResponse(string Id, string Object, string Url, IReadOnlyList<string> Events, DateTime CreatedAt, string? Secret = null)
    {
        public static WebhookResponse From(WebhookEndpoint e, bool withSecret = false) =>
            new(e.Id, "webhook_endpoint", e.Url, e.Events, e.CreatedAt, withSecret ? e.Secret : null);
    }

    public sealed record AttemptResponse(int Number, DateTime StartedAt, double DurationMs, int? StatusCode, string? Error);

    public sealed record DeliveryResponse(
        string Id, string Object, string EventType, string Status, int Attempts, DateTime CreatedAt, DateTime? DeliveredAt,
        DateTime? NextAttemptAt, string Payload, IReadOnlyList<AttemptResponse> AttemptLog);

    private static readonly string[] KnownEvents = [JobStatus.Queued, JobStatus.Running, JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled];

    public static IEndpointRouteBuilder MapWebhooksApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/webhooks").WithTags("Webhooks").RequireAuthorization(AuthPolicies.Tenant);
        group.MapPost("/", Create).WithSummary("Register an endpoint for job state changes; the signing secret is shown once.");
        group.MapGet("/", List).WithSummary("The calling tenant's endpoints, newest first (limit, after).");
        group.MapGet("/{id}", Get).WithSummary("One endpoint (without its secret).");
        group.MapDelete("/{id}", Delete).WithSummary("Remove an endpoint and its delivery log; pending deliveries are dropped.");
        group.MapGet("/{id}/deliveries", Deliveries).WithSummary("An endpoint's deliveries, newest first, each with its attempts (limit, after).");
        return app;
    }

    internal static async Task<Results<Created<WebhookResponse>, ProblemHttpResult>> Create(
        CreateWebhookRequest request, ClaimsPrincipal user, ReadDbContext db, IOptions<WebhookOptions> options, CancellationToken ct)
    {
        if (ValidateUrl(request.Url, options.Value.AllowPrivateNetworks) is { } urlProblem)
            return urlProblem;
        var events = (request.Events ?? []).Distinct(StringComparer.Ordinal).ToList();
        if (events.FirstOrDefault(e => !KnownEvents.Contains(e)) is { } unknown)
            return ApiProblems.BadRequest("invalid_webhook_events",
                $"Unknown event '{unknown}'; events are job statuses: {string.Join(", ", KnownEvents)} (empty means all).");
        var tenant = user.GetTenantId();
        if (await db.WebhookEndpoints.CountAsync(e => e.TenantId == tenant, ct) >= options.Value.MaxEndpointsPerTenant)
            return ApiProblems.Problem(StatusCodes.Status409Conflict, "webhook_limit_reached", "Conflict",
                $"A tenant may register at most {options.Value.MaxEndpointsPerTenant} webhook endpoints; delete one first.");
        var endpoint = new WebhookEndpoint
        {
            Id = "wh-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant,
            Url = request.Url!,
            Events = events,
            Secret = WebhookSignature.GenerateSecret(),
            CreatedAt = DateTime.UtcNow,
        };
        db.WebhookEndpoints.Add(endpoint);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/v1/webhooks/{endpoint.Id}", WebhookResponse.From(endpoint, withSecret: true));
    }

    /// <summary>
    /// http(s) only, no credentials in the URL; without AllowPrivateNetworks a literal private address or localhost is
    /// refused here already (names are checked after DNS, when the dispatcher connects).
    /// </summary>
    internal static ProblemHttpResult? ValidateUrl(string? url, bool allowPrivateNetworks)
    {
        if (string.IsNullOrWhiteSpace(url) || url.Length > 2048
            || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
            return ApiProblems.BadRequest("invalid_webhook_url", "url must be an absolute http or https URL of at most 2048 characters.");
        if (uri.UserInfo.Length > 0)
            return ApiProblems.BadRequest("invalid_webhook_url", "url must not contain credentials; authenticate deliveries with the signature.");
        if (!allowPrivateNetworks && (uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var ip) && !NetworkGuard.IsPublic(ip))))
            return ApiProblems.BadRequest("webhook_url_not_allowed",
                "url points at a loopback, private or link-local address, which this deployment refuses (Read:Webhooks:AllowPrivateNetworks).");
        return null;
    }

    internal static async Task<Results<Ok<Page<WebhookResponse>>, ProblemHttpResult>> List(
        ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        var (page, problem) = await PageRequest.NewestFirstAsync(db.WebhookEndpoints, user.GetTenantId(), limit, after, ct);
        if (problem is not null)
            return problem;
        return TypedResults.Ok(new Page<WebhookResponse>(page!.Object, page.Data.Select(e => WebhookResponse.From(e)).ToList(), page.HasMore));
    }

    internal static async Task<Results<Ok<WebhookResponse>, ProblemHttpResult>> Get(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var endpoint = await db.WebhookEndpoints.AsNoTracking().FirstOrDefaultAsync(e => e.Id == id && e.TenantId == tenant, ct);
        return endpoint is null ? ApiProblems.NotFound("webhook endpoint", id) : TypedResults.Ok(WebhookResponse.From(endpoint));
    }

    internal static async Task<Results<NoContent, ProblemHttpResult>> Delete(string id, ClaimsPrincipal user, ReadDbContext db, CancellationToken ct)
    {
        var tenant = user.GetTenantId();
        var deleted = await db.WebhookEndpoints.Where(e => e.Id == id && e.TenantId == tenant).ExecuteDeleteAsync(ct);
        return deleted == 0 ? ApiProblems.NotFound("webhook endpoint", id) : TypedResults.NoContent();
    }

    internal static async Task<Results<Ok<Page<DeliveryResponse>>, ProblemHttpResult>> Deliveries(
        string id, ClaimsPrincipal user, ReadDbContext db, int? limit, string? after, CancellationToken ct)
    {
        if (PageRequest.Validate(limit) is { } bad)
            return bad;
        var take = limit ?? PageRequest.DefaultLimit;
        var tenant = user.GetTenantId();
        if (!await db.WebhookEndpoints.AnyAsync(e => e.Id == id && e.TenantId == tenant, ct))
            return ApiProblems.NotFound("webhook endpoint", id);
        var query = db.WebhookDeliveries.AsNoTracking().Where(d => d.EndpointId == id && d.TenantId == tenant);
        if (after is not null)
        {
            var cursor = await query.Where(d => d.Id == after).Select(d => (long?)d.ChangeId).FirstOrDefaultAsync(ct);
            if (cursor is not { } c)
                return PageRequest.UnknownCursor(after);
            query = query.Where(d => d.ChangeId < c);
        }
        // The outbox id orders events as they happened; one delivery per (endpoint, change).
        var rows = await query.OrderByDescending(d => d.ChangeId).Take(take + 1).ToListAsync(ct);
        var page = PageRequest.From(rows, take);
        var ids = page.Data.Select(d => d.Id).ToList();
        var attempts = (await db.WebhookDeliveryAttempts.AsNoTracking().Where(a => ids.Contains(a.DeliveryId)).ToListAsync(ct))
            .ToLookup(a => a.DeliveryId);
        var data = page.Data.Select(d => new DeliveryResponse(
            d.Id, "webhook_delivery", d.EventType, d.Status, d.Attempts, d.CreatedAt, d.DeliveredAt,
            d.Status == WebhookDeliveryStatus.Pending ? d.NextAttemptAt : null, d.Payload,
            attempts[d.Id].OrderBy(a => a.Number).Select(a => new AttemptResponse(a.Number, a.StartedAt, a.DurationMs, a.StatusCode, a.Error)).ToList()))
            .ToList();
        return TypedResults.Ok(new Page<DeliveryResponse>(page.Object, data, page.HasMore));
    }
}
