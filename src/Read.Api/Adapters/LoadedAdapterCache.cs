using System.Collections.Concurrent;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Adapters;

/// <summary>
/// Keeps side networks loaded across predict requests (the backbone itself is cached by <see cref="BackboneRegistry"/>).
/// Bounded: the least recently used adapter is evicted past <see cref="Capacity"/>. A predict holds a
/// <see cref="Lease"/>; an adapter evicted or deleted while leased is disposed when its last lease ends, never under
/// a running predict.
/// </summary>
internal sealed class LoadedAdapterCache(BackboneRegistry backbones) : IDisposable
{
    public const int Capacity = 64;

    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private long _clock;

    /// <summary>
    /// Leases the loaded adapter for <paramref name="adapterId"/>; <paramref name="artifact"/> is asked for only on a
    /// miss. Dispose the lease when the predict is done.
    /// </summary>
    public Lease Acquire(string adapterId, string backboneId, Func<byte[]> artifact)
    {
        var backbone = backbones.Get(backboneId);
        while (true)
        {
            var entry = _entries.GetOrAdd(adapterId, _ => new Entry(new Lazy<LoadedAdapter>(() => AdapterArtifact.Load(artifact(), backbone))));
            if (!entry.TryAcquire())
            {
                // Retired between the lookup and the lease (evicted or deleted just now): it is out of the map; look again.
                _entries.TryRemove(KeyValuePair.Create(adapterId, entry));
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
                entry.Release();
                Retire(adapterId, entry);
                throw;
            }

            EvictIfFull();
            return new Lease(entry, backbone, adapter);
        }
    }

    /// <summary>Drops the adapter (deleted): disposed now if unleased, else when its last lease ends.</summary>
    public void Remove(string adapterId)
    {
        if (_entries.TryRemove(adapterId, out var entry))
            entry.Retire();
    }

    private void Retire(string adapterId, Entry entry)
    {
        _entries.TryRemove(KeyValuePair.Create(adapterId, entry));
        entry.Retire();
    }

    private void EvictIfFull()
    {
        while (_entries.Count > Capacity)
        {
            var oldest = _entries.MinBy(e => e.Value.LastUsed);
            Retire(oldest.Key, oldest.Value);
        }
    }

    public void Dispose()
    {
        foreach (var id in _entries.Keys)
            Remove(id);
    }

    /// <summary>One predict's hold on a loaded adapter.</summary>
    public sealed class Lease : IDisposable
    {
        private readonly Entry entry;
        private int released;

        internal Lease(Entry entry, Backbone backbone, LoadedAdapter adapter)
        {
            this.entry = entry;
            Backbone = backbone;
            Adapter = adapter;
        }

        public Backbone Backbone { get; }

        public LoadedAdapter Adapter { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref released, 1) == 0)
                entry.Release();
        }
    }

    internal sealed class Entry(Lazy<LoadedAdapter> adapter)
    {
        private readonly Lock gate = new();
        private int leases;
        private bool retired;

        public Lazy<LoadedAdapter> Adapter { get; } = adapter;

        public long LastUsed;

        public bool TryAcquire()
        {
            lock (gate)
            {
                if (retired)
                    return false;
                leases++;
                return true;
            }
        }

        public void Release()
        {
            lock (gate)
            {
                leases--;
                if (retired && leases == 0)
                    DisposeAdapter();
            }
        }

        public void Retire()
        {
            lock (gate)
            {
                if (retired)
                    return;
                retired = true;
                if (leases == 0)
                    DisposeAdapter();
            }
        }

        private void DisposeAdapter()
        {
            if (Adapter.IsValueCreated)
                Adapter.Value.Dispose();
        }
    }
}
