using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Read.Api.Inference;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Adapters;

/// <summary>
/// Keeps side networks loaded across predict requests (the backbone itself is cached by <see cref="BackboneRegistry"/>).
/// Bounded by count and by artifact bytes (<see cref="InferenceOptions.MaxLoadedAdapters"/>,
/// <see cref="InferenceOptions.MaxLoadedAdapterBytes"/>); the least recently used adapter is evicted first. A predict
/// holds a <see cref="Lease"/>; an adapter evicted or deleted while leased is disposed when its last lease ends, never
/// under a running predict. The first request loads asynchronously (artifact read and deserialisation off the request
/// thread), and concurrent first requests share that one load.
/// </summary>
internal sealed class LoadedAdapterCache(BackboneRegistry backbones, IOptions<InferenceOptions> options, InferenceMetrics? metrics = null) : IDisposable
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private readonly Lock _evictGate = new();
    private long _clock;

    /// <summary>Adapters loaded (or loading) now.</summary>
    public int Count => _entries.Count;

    /// <summary>
    /// Leases the loaded adapter for <paramref name="adapterId"/>; <paramref name="artifact"/> is called only on a
    /// miss, once however many requests miss together, on a thread-pool thread, and returns null when the adapter no longer
    /// exists (<see cref="AdapterGoneException"/>); an adapter whose backbone is not registered throws
    /// <see cref="BackboneUnavailableException"/>. Dispose the lease when the predict is done.
    /// </summary>
    public async Task<Lease> AcquireAsync(string adapterId, string backboneId, Func<Task<byte[]?>> artifact, CancellationToken ct = default)
    {
        while (true)
        {
            var candidate = new Entry();
            var entry = _entries.GetOrAdd(adapterId, candidate);
            var loader = ReferenceEquals(entry, candidate);
            if (!entry.TryAcquire())
            {
                // Retired between the lookup and the lease (evicted or deleted just now): it is out of the map; look again.
                _entries.TryRemove(KeyValuePair.Create(adapterId, entry));
                continue;
            }

            metrics?.CacheLookup(hit: !loader);
            if (loader)
                entry.Start(LoadAsync(adapterId, backboneId, artifact));
            entry.LastUsed = Interlocked.Increment(ref _clock);
            Loaded loaded;
            try
            {
                // The loader waits regardless of its own cancellation: other requests share the load.
                loaded = loader ? await entry.Loading : await entry.Loading.WaitAsync(ct);
            }
            catch
            {
                entry.Release();
                if (entry.Loading.IsFaulted || entry.Loading.IsCanceled)
                    Retire(adapterId, entry); // a failed load is not cached: the next request tries again
                throw;
            }

            EvictIfFull(entry);
            return new Lease(entry, loaded.Backbone, loaded.Adapter);
        }
    }

    /// <summary>
    /// Tests only: awaited on the load's thread before the artifact is read, to land a delete between a request's lookup
    /// and its load.
    /// </summary>
    internal Func<string, Task>? BeforeArtifactRead { get; set; }

    // Wholly off the request thread: embedded mode's SQLite reads synchronously even when called async, the backbone may
    // load from disk the first time, and deserialising builds tensors.
    private Task<Loaded> LoadAsync(string adapterId, string backboneId, Func<Task<byte[]?>> artifact) => Task.Run(async () =>
    {
        if (!backbones.Contains(backboneId))
            throw new BackboneUnavailableException(adapterId, backboneId);
        if (BeforeArtifactRead is { } hook)
            await hook(adapterId);
        var bytes = await artifact() ?? throw new AdapterGoneException(adapterId);
        var backbone = backbones.Get(backboneId); // registered (checked above); a failure while loading it is not "unavailable"
        return new Loaded(backbone, AdapterArtifact.Load(bytes, backbone), bytes.LongLength);
    });

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

    private void EvictIfFull(Entry keep)
    {
        var limits = options.Value;
        lock (_evictGate)
        {
            while (true)
            {
                var loaded = _entries.Where(e => e.Value.Loading.IsCompletedSuccessfully).ToList();
                var bytes = loaded.Sum(e => e.Value.Loading.Result.Bytes);
                if (_entries.Count <= limits.MaxLoadedAdapters && bytes <= limits.MaxLoadedAdapterBytes)
                    return;
                // Entries still loading are not candidates: their loaders are about to use them.
                var victims = loaded.Where(e => !ReferenceEquals(e.Value, keep)).ToList();
                if (victims.Count == 0)
                    return;
                var oldest = victims.MinBy(e => e.Value.LastUsed);
                Retire(oldest.Key, oldest.Value);
                metrics?.Evicted();
            }
        }
    }

    public void Dispose()
    {
        foreach (var id in _entries.Keys)
            Remove(id);
    }

    internal sealed record Loaded(Backbone Backbone, LoadedAdapter Adapter, long Bytes);

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

    internal sealed class Entry
    {
        private readonly Lock gate = new();
        private readonly TaskCompletionSource<Loaded> loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int leases;
        private bool retired;
        private bool disposed;

        public Task<Loaded> Loading => loaded.Task;

        public long LastUsed;

        public void Start(Task<Loaded> load) => load.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully)
                loaded.TrySetResult(t.Result);
            else
                loaded.TrySetException(t.Exception?.InnerExceptions ?? [new OperationCanceledException()]);
            lock (gate)
            {
                // Retired while loading, with every lease already gone: nobody else will dispose it.
                if (retired && leases == 0)
                    DisposeAdapter();
            }
        }, TaskScheduler.Default);

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
            if (!disposed && Loading.IsCompletedSuccessfully)
            {
                disposed = true;
                Loading.Result.Adapter.Dispose();
            }
        }
    }
}
