using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Webhooks;

namespace Read.Api.Webhooks;

/// <summary>
/// Drains the webhook outbox: turns each job state change into one delivery per matching endpoint, then POSTs due
/// deliveries, signed, retrying failures with exponential backoff. Every step is a conditional update, so several API
/// processes may run it side by side and each delivery is sent by one of them at a time.
/// </summary>
internal sealed partial class WebhookDispatcher(
    IDbContextFactory<ReadDbContext> dbFactory,
    IOptions<WebhookOptions> options,
    ILogger<WebhookDispatcher> logger) : BackgroundService
{
    private const int BatchSize = 50;
    private const int MaxErrorLength = 500;
    private readonly HttpClient _http = CreateClient(options.Value);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await FanOutAsync(stoppingToken);
                await SendDueAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database may be briefly away; the outbox keeps everything for the next pass.
                logger.LogWarning(e, "Webhook dispatch pass failed; retrying next poll");
            }

            try
            {
                await Task.Delay(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    internal async Task FanOutAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var changes = await db.JobStateChanges.AsNoTracking().Where(c => c.FannedOutAt == null)
            .OrderBy(c => c.Id).Take(BatchSize).ToListAsync(ct);
        if (changes.Count == 0)
            return;
        // One read of the endpoints and jobs the whole batch needs, not one per change. An endpoint registered after
        // this read sees only later changes, as it would had it been registered a moment later.
        var tenants = changes.Select(c => c.TenantId).Distinct().ToList();
        var endpointsByTenant = (await db.WebhookEndpoints.AsNoTracking().Where(e => tenants.Contains(e.TenantId)).ToListAsync(ct))
            .ToLookup(e => e.TenantId);
        var jobIds = changes.Where(c => endpointsByTenant.Contains(c.TenantId)).Select(c => c.JobId).Distinct().ToList();
        var jobs = jobIds.Count == 0 ? new Dictionary<string, FineTuneJob>()
            : await db.Jobs.AsNoTracking().Where(j => jobIds.Contains(j.Id)).ToDictionaryAsync(j => j.Id, ct);
        foreach (var change in changes)
        {
            var endpoints = endpointsByTenant[change.TenantId].Where(e => e.Events.Count == 0 || e.Events.Contains(change.Status)).ToList();
            // The claim and the deliveries it creates commit together: a crash in between leaves the change unclaimed.
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var now = DateTime.UtcNow;
            var claimed = await db.JobStateChanges.Where(c => c.Id == change.Id && c.FannedOutAt == null)
                .ExecuteUpdateAsync(s => s.SetProperty(c => c.FannedOutAt, now), ct);
            if (claimed == 0)
                continue; // another dispatcher took it
            if (endpoints.Count > 0)
            {
                var payload = Payload(change, jobs.GetValueOrDefault(change.JobId));
                foreach (var endpoint in endpoints)
                {
                    db.WebhookDeliveries.Add(new WebhookDelivery
                    {
                        Id = "whd-" + Guid.NewGuid().ToString("N"),
                        EndpointId = endpoint.Id,
                        TenantId = change.TenantId,
                        ChangeId = change.Id,
                        EventType = EventType(change.Status),
                        Payload = payload,
                        Status = WebhookDeliveryStatus.Pending,
                        NextAttemptAt = now,
                        CreatedAt = now,
                    });
                }
                await db.SaveChangesAsync(ct);
            }
            await tx.CommitAsync(ct);
        }
    }

    internal static string EventType(string status) => $"fine_tuning.job.{status}";

    /// <summary>The event body: the change itself, with the job's outcome fields that belong to that status.</summary>
    private static string Payload(JobStateChange change, FineTuneJob? job)
    {
        var data = new Dictionary<string, object?>
        {
            ["id"] = change.JobId,
            ["object"] = "fine_tuning.job",
            ["status"] = change.Status,
            ["backbone"] = job?.BackboneId,
        };
        if (change.Status == JobStatus.Succeeded)
            data["adapter_id"] = job?.AdapterId;
        if (change.Status == JobStatus.Failed && job?.ErrorCode is not null)
            data["error"] = new Dictionary<string, object?> { ["code"] = job.ErrorCode, ["message"] = job.ErrorMessage };
        var body = new Dictionary<string, object?>
        {
            ["id"] = $"evt-{change.Id}",
            ["object"] = "event",
            ["type"] = EventType(change.Status),
            ["created_at"] = new DateTimeOffset(DateTime.SpecifyKind(change.OccurredAt, DateTimeKind.Utc)).ToUnixTimeSeconds(),
            ["data"] = data,
        };
        return JsonSerializer.Serialize(body, JsonDefaults.SnakeCase);
    }

    internal async Task SendDueAsync(CancellationToken ct)
    {
        List<WebhookDelivery> due;
        Dictionary<string, WebhookEndpoint> endpoints;
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            var now = DateTime.UtcNow;
            due = await db.WebhookDeliveries.AsNoTracking()
                .Where(d => d.Status == WebhookDeliveryStatus.Pending && d.NextAttemptAt <= now)
                .OrderBy(d => d.NextAttemptAt).Take(BatchSize).ToListAsync(ct);
            var endpointIds = due.Select(d => d.EndpointId).Distinct().ToList();
            endpoints = endpointIds.Count == 0 ? []
                : await db.WebhookEndpoints.AsNoTracking().Where(e => endpointIds.Contains(e.Id)).ToDictionaryAsync(e => e.Id, ct);
        }
        // In event order per endpoint; endpoints in parallel, so a slow receiver holds up only its own deliveries.
        // A failed delivery is retried later without holding the next ones back: receivers order by created_at.
        // An endpoint deleted since took its deliveries with it (cascade), so its group is skipped.
        var byEndpoint = due.Where(d => endpoints.ContainsKey(d.EndpointId))
            .GroupBy(d => d.EndpointId).Select(g => (Endpoint: endpoints[g.Key], Deliveries: g.OrderBy(d => d.ChangeId).ToList()));
        await Parallel.ForEachAsync(byEndpoint, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct },
            async (group, token) =>
            {
                foreach (var delivery in group.Deliveries)
                    await SendAsync(group.Endpoint, delivery, token);
            });
    }

    private async Task SendAsync(WebhookEndpoint endpoint, WebhookDelivery delivery, CancellationToken ct)
    {
        var o = options.Value;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        // The claim: push the due time past this attempt's timeout; a second dispatcher's WHERE then no longer matches.
        // It also fails when the endpoint was deleted since the read (its deliveries are gone).
        var claimUntil = now + o.AttemptTimeout + TimeSpan.FromSeconds(30);
        var claimed = await db.WebhookDeliveries
            .Where(d => d.Id == delivery.Id && d.Status == WebhookDeliveryStatus.Pending && d.Attempts == delivery.Attempts && d.NextAttemptAt <= now)
            .ExecuteUpdateAsync(s => s.SetProperty(d => d.NextAttemptAt, claimUntil), ct);
        if (claimed == 0)
            return;

        var number = delivery.Attempts + 1;
        var started = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        int? statusCode = null;
        string? error = null;
        try
        {
            var timestamp = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            using var request = new HttpRequestMessage(HttpMethod.Post, endpoint.Url)
            {
                Content = new StringContent(delivery.Payload, Encoding.UTF8, "application/json"),
            };
            request.Headers.Add(WebhookSignature.IdHeader, delivery.Id);
            request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
            request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(endpoint.Secret, timestamp, delivery.Payload));
            request.Headers.UserAgent.ParseAdd("Read-Webhooks/1");
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(o.AttemptTimeout);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            statusCode = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
                error = $"HTTP {statusCode}";
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            error = $"No answer within {o.AttemptTimeout.TotalSeconds:0.#} s";
        }
        catch (HttpRequestException e)
        {
            error = Truncate(e.InnerException is SocketException s ? $"{e.Message} ({s.SocketErrorCode})" : e.Message);
        }

        var succeeded = error is null;
        var finished = DateTime.UtcNow;
        var status = succeeded ? WebhookDeliveryStatus.Succeeded
            : number >= o.MaxAttempts ? WebhookDeliveryStatus.Failed : WebhookDeliveryStatus.Pending;
        var next = status == WebhookDeliveryStatus.Pending ? finished + Backoff(o.RetryBaseDelay, number) : finished;
        // The attempt and the delivery's new state commit together, so the attempt count always matches the attempts
        // recorded. Not cancellable: an attempt that was made must be recorded, even while the host stops.
        try
        {
            await using var tx = await db.Database.BeginTransactionAsync(CancellationToken.None);
            db.WebhookDeliveryAttempts.Add(new WebhookDeliveryAttempt
            {
                DeliveryId = delivery.Id, Number = number, StartedAt = started, DurationMs = clock.Elapsed.TotalMilliseconds,
                StatusCode = statusCode, Error = error,
            });
            await db.SaveChangesAsync(CancellationToken.None);
            await db.WebhookDeliveries.Where(d => d.Id == delivery.Id).ExecuteUpdateAsync(s => s
                .SetProperty(d => d.Attempts, number)
                .SetProperty(d => d.Status, status)
                .SetProperty(d => d.NextAttemptAt, next)
                .SetProperty(d => d.LastStatusCode, statusCode)
                .SetProperty(d => d.LastError, error)
                .SetProperty(d => d.DeliveredAt, succeeded ? finished : null), CancellationToken.None);
            await tx.CommitAsync(CancellationToken.None);
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
            if (await db.WebhookDeliveries.AnyAsync(d => d.Id == delivery.Id, CancellationToken.None))
                throw;
            return; // the endpoint was deleted during the attempt, and its deliveries with it: nothing left to record
        }
        if (succeeded)
            LogDelivered(delivery.Id, delivery.EventType, number);
        else
            LogAttemptFailed(delivery.Id, number, error!, status);
    }

    /// <summary>Delay after attempt <paramref name="attempt"/> failed: base, 2×base, 4×base, … (capped at a day).</summary>
    internal static TimeSpan Backoff(TimeSpan baseDelay, int attempt) =>
        TimeSpan.FromTicks((long)Math.Min(baseDelay.Ticks * Math.Pow(2, attempt - 1), TimeSpan.FromDays(1).Ticks));

    private static string Truncate(string text) => text.Length <= MaxErrorLength ? text : text[..MaxErrorLength];

    internal static HttpClient CreateClient(WebhookOptions o)
    {
        var handler = new SocketsHttpHandler
        {
            // A redirect could point anywhere, the guard's refusals included; receivers must answer themselves.
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            ConnectCallback = async (context, token) =>
            {
                // The address is checked after DNS, at connect time, so a name that resolves to a private address
                // (or is re-pointed after registration) is still refused.
                var addresses = await Dns.GetHostAddressesAsync(context.DnsEndPoint.Host, token);
                if (!o.AllowPrivateNetworks)
                    addresses = addresses.Where(NetworkGuard.IsPublic).ToArray();
                if (addresses.Length == 0)
                    throw new HttpRequestException(
                        $"'{context.DnsEndPoint.Host}' has no public address; private, loopback and link-local destinations are refused (Read:Webhooks:AllowPrivateNetworks).");
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(addresses, context.DnsEndPoint.Port, token);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    [LoggerMessage(LogLevel.Information, "Webhook delivery {DeliveryId} ({EventType}) delivered on attempt {Attempt}")]
    private partial void LogDelivered(string deliveryId, string eventType, int attempt);

    [LoggerMessage(LogLevel.Warning, "Webhook delivery {DeliveryId} attempt {Attempt} failed: {Error}; now {Status}")]
    private partial void LogAttemptFailed(string deliveryId, int attempt, string error, string status);
}
