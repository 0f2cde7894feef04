using System.Collections.Concurrent;
using Serilog.Core;
using Serilog.Events;

namespace Read.Api.Tests;

/// <summary>A Serilog sink that keeps every event, so tests can assert what the service logged.</summary>
internal sealed class CapturedLogs : ILogEventSink
{
    private readonly ConcurrentQueue<LogEvent> events = new();
    private readonly ConcurrentDictionary<Func<LogEvent, bool>, TaskCompletionSource<LogEvent>> waiters = new();

    public IReadOnlyList<LogEvent> Events => [.. events];

    /// <summary>Rendered messages: what a reader of the log sees.</summary>
    public IReadOnlyList<string> Messages => Events.Select(e => e.RenderMessage()).ToList();

    public void Emit(LogEvent logEvent)
    {
        events.Enqueue(logEvent);
        foreach (var (match, waiter) in waiters)
            if (match(logEvent))
                waiter.TrySetResult(logEvent);
    }

    /// <summary>
    /// The first event that matches, waiting for it if need be: the request log is written after the response has
    /// gone out, so a client can see the answer before the event exists.
    /// </summary>
    public async Task<LogEvent> WaitForAsync(Func<LogEvent, bool> match, TimeSpan? timeout = null)
    {
        var waiter = new TaskCompletionSource<LogEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        waiters[match] = waiter;
        try
        {
            if (events.FirstOrDefault(match) is { } existing)
                return existing;
            return await waiter.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(30));
        }
        finally
        {
            waiters.TryRemove(match, out _);
        }
    }

    /// <summary>The request-logging middleware's event for one request path (it carries the final status code).</summary>
    public Task<LogEvent> RequestLogAsync(string path) =>
        WaitForAsync(e => e.Properties.TryGetValue("RequestPath", out var p) && p is ScalarValue { Value: string s } && s == path
                          && e.Properties.ContainsKey("StatusCode"));
}
