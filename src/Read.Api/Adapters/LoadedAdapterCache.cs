using System.Collections.Concurrent;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Adapters;

/// <summary>
/// Keeps side networks loaded across predict requests (the backbone itself is cached by <see cref="BackboneRegistry"/>).
/// Bounded: the least recently used adapter is evicted past <see cref="Capacity"/>.
/// </summary>
internal sealed class LoadedAdapterCache(BackboneRegistry backbones) : IDisposable
{
    public const int Capacity = 64;

    private sealed record Entry(Lazy<LoadedAdapter> Adapter)
    {
        public long LastUsed;
    }

    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private long _clock;

    /// <summary>The loaded adapter for <paramref name="adapterId"/>; <paramref name="artifact"/> is asked for only on a miss.</summary>
    public (Backbone Backbone, LoadedAdapter Adapter) Get(string adapterId, string backboneId, Func<byte[]> artifact)
    {
        var backbone = backbones.Get(backboneId);
        var entry = _entries.GetOrAdd(adapterId, _ => new Entry(new Lazy<LoadedAdapter>(() => AdapterArtifact.Load(artifact(), backbone))));
        entry.LastUsed = Interlocked.Increment(ref _clock);
        LoadedAdapter adapter;
        try
        {
            adapter = entry.Adapter.Value;
        }
        catch
        {
            _entries.TryRemove(adapterId, out _);
            throw;
        }
        EvictIfFull();
        return (backbone, adapter);
    }

    public void Remove(string adapterId)
    {
        if (_entries.TryRemove(adapterId, out var entry) && entry.Adapter.IsValueCreated)
            entry.Adapter.Value.Dispose();
    }

    private void EvictIfFull()
    {
        while (_entries.Count > Capacity)
        {
            var oldest = _entries.MinBy(e => e.Value.LastUsed);
            Remove(oldest.Key);
        }
    }

    public void Dispose()
    {
        foreach (var id in _entries.Keys)
            Remove(id);
    }
}
