using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Read.Api.Tests;

/// <summary>
/// A real HTTP receiver for webhook tests: Kestrel on a loopback port, recording every request; answers 500 to the first
/// <see cref="FailFirst"/> requests, 200 after.
/// </summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    public sealed record Received(string Body, IReadOnlyDictionary<string, string> Headers, DateTime At);

    private readonly WebApplication _app;
    private int _seen;

    public ConcurrentQueue<Received> Requests { get; } = new();
    public int FailFirst { get; init; }
    public string Url { get; private set; } = "";

    private WebhookReceiver(WebApplication app) => _app = app;

    public static async Task<WebhookReceiver> StartAsync(int failFirst = 0)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app) { FailFirst = failFirst };
        app.MapPost("/hook", async (HttpContext context) =>
        {
            using var reader = new StreamReader(context.Request.Body);
            var body = await reader.ReadToEndAsync();
            receiver.Requests.Enqueue(new Received(body,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase), DateTime.UtcNow));
            return Interlocked.Increment(ref receiver._seen) <= receiver.FailFirst ? Results.StatusCode(500) : Results.Ok();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Url = address.TrimEnd('/') + "/hook";
        return receiver;
    }

    /// <summary>Waits until a request satisfies <paramref name="match"/> (or fails the test after <paramref name="timeout"/>).</summary>
    public async Task<Received> WaitForAsync(Func<Received, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            if (Requests.FirstOrDefault(match) is { } found)
                return found;
            Assert.True(DateTime.UtcNow < deadline, $"no matching webhook request arrived; got {Requests.Count}: {string.Join(" | ", Requests.Select(r => r.Body))}");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
