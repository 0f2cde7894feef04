using System.Collections.Concurrent;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Adapters;

/// <summary>
/// Keeps side networks loaded across predict requests (the backbone itself is cached by <see cref="BackboneRegistry"/>).
/// Bounded: the least recently used adapter is evicted past <see cref="Capacity"/>. A predict holds a <see cref="Lease"/>
/// while it runs: eviction or delete only drops the cache's own reference, and the adapter is disposed when the last
/// lease is released, so a concurrent predict never runs on a disposed network.
/// </summary>
internal sealed class LoadedAdapterCache(BackboneRegistry backbones) : IDisposable
{
    public const int Capacity = 64;

    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private long _clock;

    /// <summary>
    /// A lease on the loaded adapter for <paramref name="adapterId"/>; <paramref name="artifact"/> is asked for only on a
    /// miss. Dispose the lease when done with the adapter.
    /// </summary>
    public Lease Acquire(string adapterId, string backboneId, Func<byte[]> artifact)
    {
        var backbone = backbones.Get(backboneId);
        while (true)
        {
            var entry = _entries.GetOrAdd(adapterId, _ => new Entry(new Lazy<LoadedAdapter>(() => AdapterArtifact.Load(artifact(), backbone))));
            if (!entry.TryAddReference())
            {
                // Removed and released between the lookup and here: drop it if still listed, and look again.
                _entries.TryRemove(new KeyValuePair<string, Entry>(adapterId, entry));
                continue;
            }

            entry.LastUsed = Interlocked.Increment(ref _clock);
            LoadedAdapter adapter;
            try
            {
                adapter = entry.Adapter.Value;
            }
            catch
            {
                Remove(adapterId, entry);
                entry.Release();
                throw;
            }

            EvictIfFull();
            return new Lease(backbone, adapter, entry);
        }
    }

    public void Remove(string adapterId)
    {
        if (_entries.TryRemove(adapterId, out var entry))
            entry.Release();
    }

    /// <summary>Removes <paramref name="entry"/> only if it is still the one listed, releasing the cache's reference once.</summary>
    private void Remove(string adapterId, Entry entry)
    {
        if (_entries.TryRemove(new KeyValuePair<string, Entry>(adapterId, entry)))
            entry.Release();
    }

    private void EvictIfFull()
    {
        while (_entries.Count > Capacity)
        {
            var oldest = _entries.MinBy(e => e.Value.LastUsed);
            Remove(oldest.Key, oldest.Value);
        }
    }

    public void Dispose()
    {
        foreach (var (id, entry) in _entries)
            Remove(id, entry);
    }

    /// <summary>One use of a cached adapter; the adapter stays alive until every lease on it is disposed.</summary>
    public sealed class Lease : IDisposable
    {
        private Entry? _entry;

        internal Lease(Backbone backbone, LoadedAdapter adapter, Entry entry)
        {
            Backbone = backbone;
            Adapter = adapter;
            _entry = entry;
        }

        public Backbone Backbone { get; }

        public LoadedAdapter Adapter { get; }

        public void Dispose() => Interlocked.Exchange(ref _entry, null)?.Release();
    }

    /// <summary>
    /// A cached adapter and its reference count: one for being listed in the cache, one per lease. Zero is final:
    /// no new lease can be taken, and the adapter (if it was ever loaded) is disposed.
    /// </summary>
    internal sealed class Entry(Lazy<LoadedAdapter> adapter)
    {
        private int _references = 1;

        public Lazy<LoadedAdapter> Adapter { get; } = adapter;

        public long LastUsed;

        public bool TryAddReference()
        {
            var current = Volatile.Read(ref _references);
            while (current > 0)
            {
                var seen = Interlocked.CompareExchange(ref _references, current + 1, current);
                if (seen == current)
                    return true;
                current = seen;
            }

            return false;
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref _references) == 0 && Adapter.IsValueCreated)
                Adapter.Value.Dispose();
        }
    }
}
