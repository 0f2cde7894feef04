using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Read.Api.Tests;

/// <summary>A logger that keeps what was logged (level, message, time), so a test can assert what a component reported.</summary>
internal sealed class ListLogger<T> : ILogger<T>
{
    public sealed record Entry(DateTime At, LogLevel Level, string Message, Exception? Exception);

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyList<Entry> Entries => [.. _entries];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        _entries.Enqueue(new Entry(DateTime.UtcNow, logLevel, formatter(state, exception), exception));
}
