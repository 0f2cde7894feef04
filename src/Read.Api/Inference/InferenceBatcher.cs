using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Inference;

/// <summary>
/// Gathers concurrent predicts (any tenant, any adapter) per backbone for up to <see cref="InferenceOptions.MaxBatchDelayMs"/>
/// into one backbone forward, then runs each adapter's side network on its own rows (see <see cref="SharedForwardPredictor"/>).
/// Admission is bounded and taken once per HTTP request (<see cref="Admit"/>; past <see cref="InferenceOptions.MaxQueuedRequests"/>
/// <see cref="InferenceQueueFullException"/>), and batches are formed round-robin over tenants so one tenant's flood waits
/// behind itself, not in front of others. Inside a batch, the rows of tenants with nothing else queued run first and each
/// request is answered as soon as its rows are through; a backlogged tenant's rows run last, and a tenant arriving
/// meanwhile stops the batch between two of its forwards (the parts not started go back to the head of their queue), so
/// it waits for about one forward, not a whole batch. With batching off each request still queues here, and runs alone: forwards
/// run on the lane's one thread in both modes, so waiting requests hold no thread-pool thread.
/// </summary>
internal sealed class InferenceBatcher : IAsyncDisposable
{
    /// <summary>How long a tenant counts as sharing a backbone after it last queued work (see <see cref="InferenceOptions.MaxTenantBatchRows"/>).</summary>
    private static readonly TimeSpan ContentionWindow = TimeSpan.FromSeconds(1);

    private readonly InferenceOptions options;
    private readonly InferenceMetrics metrics;
    private readonly ILogger<InferenceBatcher> logger;
    private readonly Lock gate = new(); // lanes and disposed: a lane is created, removed or stopped under it
    private readonly Dictionary<Backbone, Lane> lanes = new();
    private readonly CancellationTokenSource stopping = new();
    private bool disposed;
    private int admitted;
    private long batches;
    private long deferredParts;

    public InferenceBatcher(IOptions<InferenceOptions> options, InferenceMetrics metrics, ILogger<InferenceBatcher> logger)
    {
        this.options = options.Value;
        this.metrics = metrics;
        this.logger = logger;
    }

    /// <summary>Requests admitted and not yet answered.</summary>
    public int QueueDepth => Volatile.Read(ref admitted);

    /// <summary>Shared forwards run so far (all backbones; with batching off, one per request).</summary>
    public long BatchesRun => Interlocked.Read(ref batches);

    /// <summary>Parts handed back by batches that stopped for a newly arrived tenant, so far (each ran again later).</summary>
    public long PartsDeferred => Interlocked.Read(ref deferredParts);

    /// <summary>
    /// Admits one predict request, whatever its number of adapters or parts, or throws
    /// <see cref="InferenceQueueFullException"/> when <see cref="InferenceOptions.MaxQueuedRequests"/> are admitted and not
    /// yet answered. Dispose the admission once the request is answered (or abandoned).
    /// </summary>
    public Admission Admit()
    {
        if (Interlocked.Increment(ref admitted) > options.MaxQueuedRequests)
        {
            Interlocked.Decrement(ref admitted);
            metrics.Rejected();
            throw new InferenceQueueFullException(options.MaxQueuedRequests);
        }

        metrics.Queued(1);
        return new Admission(this);
    }

    /// <summary>
    /// The predictions a lone <see cref="AdapterPredictor.Predict(Backbone, LoadedAdapter, IReadOnlyList{string}, IReadOnlyList{string?}?)"/>
    /// would give, and the (highest) batch number that served them. Returns (or throws) only once no part of the request is
    /// queued or running, so the caller's lease on <paramref name="adapter"/> outlives every use of it. Cancelling
    /// <paramref name="ct"/> takes the request's queued parts out at once; a part already in a running batch finishes
    /// first, or leaves when the batch stops before it. Throws <see cref="InferenceUnavailableException"/> when the batcher is stopping or the lane failed.
    /// </summary>
    public async Task<BatchedPrediction> PredictAsync(
        string tenant, Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        var key = SharedForwardPredictor.EncodingKey(adapter);
        // Batching on: a request is split into parts of at most a tenant's share of a batch; its parts queue like separate
        // requests of the same tenant. Batching off: the request is one part, run alone.
        var chunk = options.Batching ? Math.Min(RowsPerBatch(key.MaxLength), options.MaxTenantBatchRows) : Math.Max(1, texts.Count);
        var parts = new WorkItem[(texts.Count + chunk - 1) / chunk];
        for (var n = 0; n < parts.Length; n++)
        {
            var start = n * chunk;
            var count = Math.Min(chunk, texts.Count - start);
            parts[n] = new WorkItem(tenant, adapter, key, Slice(texts, start, count), pairs is null ? null : Slice(pairs, start, count), ct);
        }

        // All parts in one write: they are queued together or not at all, so a refusal leaves nothing of the request running.
        if (!LaneFor(backbone).TryQueue(parts))
            throw new InferenceUnavailableException("The inference queue for this backbone is not accepting work (shutting down or restarting); retry shortly.");
        BatchedPrediction[] results;
        using (ct.Register(() => { foreach (var part in parts) part.Cancel(); }))
            results = await Task.WhenAll(parts.Select(p => p.Result.Task)); // every part settled: none still uses the adapter
        return new BatchedPrediction(results.SelectMany(r => r.Predictions).ToArray(), results.Max(r => r.Batch));
    }

    private Lane LaneFor(Backbone backbone)
    {
        lock (gate)
        {
            if (disposed)
                throw new InferenceUnavailableException("The inference service is shutting down.");
            if (!lanes.TryGetValue(backbone, out var lane))
                lanes[backbone] = lane = new Lane(this, backbone, stopping.Token);
            return lane;
        }
    }

    private void Forget(Backbone backbone, Lane lane)
    {
        lock (gate)
        {
            if (lanes.TryGetValue(backbone, out var current) && ReferenceEquals(current, lane))
                lanes.Remove(backbone);
        }
    }

    private int RowsPerBatch(int maxLength) => Math.Max(1, Math.Min(options.MaxBatchRows, options.MaxBatchTokens / Math.Max(1, maxLength)));

    private static IReadOnlyList<T> Slice<T>(IReadOnlyList<T> list, int start, int count) =>
        start == 0 && count == list.Count ? list : list.Skip(start).Take(count).ToArray();

    public async ValueTask DisposeAsync()
    {
        List<Lane> open;
        lock (gate)
        {
            if (disposed)
                return;
            disposed = true; // no lane is created from here on, so none can start on the token disposed below
            open = lanes.Values.ToList();
            lanes.Clear();
        }

        await stopping.CancelAsync();
        foreach (var lane in open)
            lane.Close();
        await Task.WhenAll(open.Select(l => l.Loop));
        stopping.Dispose();
    }

    /// <summary>One admitted request's place in the inference queue; disposing it (once) gives the place back.</summary>
    public sealed class Admission : IDisposable
    {
        private InferenceBatcher? owner;

        internal Admission(InferenceBatcher owner) => this.owner = owner;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref owner, null) is { } batcher)
            {
                Interlocked.Decrement(ref batcher.admitted);
                batcher.metrics.Queued(-1);
            }
        }
    }

    /// <summary>
    /// One part of a request. Queued until the lane takes it into a batch or it is cancelled; a batch that stops early
    /// puts it back at the head of its tenant's queue (<see cref="TryRequeue"/>), where it can be cancelled again.
    /// </summary>
    private sealed class WorkItem(
        string tenant, LoadedAdapter adapter, (int MaxLength, TokenizerSettings Tokenizer) key, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs,
        CancellationToken ct)
    {
        private const int Queued = 0, Taken = 1, Cancelled = 2;
        private int state;

        public string Tenant => tenant;

        public LoadedAdapter Adapter => adapter;

        public (int MaxLength, TokenizerSettings Tokenizer) Key => key;

        public IReadOnlyList<string> Texts => texts;

        public IReadOnlyList<string?>? Pairs => pairs;

        public TaskCompletionSource<BatchedPrediction> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Enqueued { get; } = Stopwatch.GetTimestamp();

        /// <summary>Whether a batch has taken it before (its wait is recorded once, at the first).</summary>
        public bool Deferred { get; set; }

        /// <summary>Set when queued: told when the item is cancelled, so it leaves the queue (and frees its memory) soon.</summary>
        public Lane? Lane { get; set; }

        public bool IsCancelled => Volatile.Read(ref state) == Cancelled;

        /// <summary>The lane takes it into a batch; false when it was cancelled first.</summary>
        public bool TryTake() => Interlocked.CompareExchange(ref state, Taken, Queued) == Queued;

        /// <summary>
        /// A batch stopped before it finished: queued again, unless its request was cancelled meanwhile (the cancellation
        /// found it taken and left it), in which case it is cancelled now and false returned.
        /// </summary>
        public bool TryRequeue()
        {
            Deferred = true;
            Interlocked.Exchange(ref state, Queued);
            if (!ct.IsCancellationRequested)
                return true; // a cancellation from here on finds it queued, and takes it out itself
            Cancel();
            return false;
        }

        /// <summary>Cancels it unless a batch has taken it (a running forward cannot give the adapter back early).</summary>
        public void Cancel()
        {
            if (Interlocked.CompareExchange(ref state, Cancelled, Queued) != Queued)
                return;
            Result.TrySetCanceled(ct);
            Lane?.NoteCancelled();
        }
    }

    /// <summary>One backbone's queue and the loop that drains it: pending work per tenant, and the tenants in serving order.</summary>
    private sealed class Lane
    {
        private readonly InferenceBatcher owner;
        private readonly Backbone backbone;
        private readonly CancellationToken stopping;
        private readonly Channel<WorkItem[]> channel = Channel.CreateUnbounded<WorkItem[]>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Dictionary<string, Queue<WorkItem>> pending = new(StringComparer.Ordinal);
        private readonly Dictionary<string, long> lastSeen = new(StringComparer.Ordinal); // when each tenant last queued work or was answered
        private Queue<string> ring = new(); // tenants with queued work, in serving order
        private Queue<string> arrivals = new(); // tenants that had nothing queued until the last drain: served first
        private int pendingRows;
        private int cancelled; // items cancelled since the last sweep

        public Lane(InferenceBatcher owner, Backbone backbone, CancellationToken stopping)
        {
            this.owner = owner;
            this.backbone = backbone;
            this.stopping = stopping;
            Loop = Task.Run(RunAsync);
        }

        public Task Loop { get; }

        public bool TryQueue(WorkItem[] parts)
        {
            foreach (var part in parts)
                part.Lane = this;
            return channel.Writer.TryWrite(parts);
        }

        public void Close() => channel.Writer.TryComplete();

        public void NoteCancelled() => Interlocked.Increment(ref cancelled);

        private async Task RunAsync()
        {
            var reader = channel.Reader;
            Exception? failure = null;
            try
            {
                while (true)
                {
                    if (pending.Count == 0 && !await reader.WaitToReadAsync(stopping))
                        break;
                    Drain(reader);
                    Sweep();
                    if (pending.Count == 0)
                        continue; // everything that arrived was cancelled already
                    await GatherAsync(reader);
                    Sweep();
                    var batch = Form();
                    if (batch.Count > 0)
                        Run(batch);
                }
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                // A fault outside a batch (gathering, forming): the lane cannot go on. Closing the channel makes later
                // requests fail at once instead of waiting on a loop that is gone; the queued ones fail below.
                owner.logger.LogCritical(e, "Inference lane stopped by an unexpected error");
                channel.Writer.TryComplete(e);
                owner.Forget(backbone, this); // the next request starts a fresh lane
                failure = e;
            }

            // Stopping (or stopped): whatever is still queued fails rather than hangs. Nothing is running here: Run
            // answers every item it took, or queues it again (a stopped batch), before it returns.
            channel.Writer.TryComplete();
            Drain(reader);
            var refusal = new InferenceUnavailableException(
                failure is null ? "The inference service is shutting down." : "The inference queue for this backbone stopped on an internal error; retry shortly.",
                failure);
            foreach (var item in pending.Values.SelectMany(q => q))
            {
                if (item.TryTake())
                    item.Result.TrySetException(refusal);
            }
        }

        // The gather window: more requests may join until the batch is full or the delay since the first one ran out.
        private async Task GatherAsync(ChannelReader<WorkItem[]> reader)
        {
            var delay = owner.options.Batching ? owner.options.MaxBatchDelayMs : 0;
            if (delay == 0 || pendingRows >= owner.options.MaxBatchRows)
                return;
            using var window = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            window.CancelAfter(delay);
            try
            {
                while (pendingRows < owner.options.MaxBatchRows && await reader.WaitToReadAsync(window.Token))
                    Drain(reader);
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
            }
        }

        private void Drain(ChannelReader<WorkItem[]> reader)
        {
            while (reader.TryRead(out var parts))
            {
                foreach (var item in parts)
                {
                    if (!pending.TryGetValue(item.Tenant, out var queue))
                    {
                        pending[item.Tenant] = queue = new Queue<WorkItem>();
                        arrivals.Enqueue(item.Tenant);
                    }

                    lastSeen[item.Tenant] = Stopwatch.GetTimestamp();

                    queue.Enqueue(item);
                    pendingRows += item.Texts.Count;
                }
            }
        }

        // Cancelled items leave their tenant's queue wherever they stand in it (not only at its head), so a disconnected
        // client's texts are not kept until its turn comes.
        private void Sweep()
        {
            if (Interlocked.Exchange(ref cancelled, 0) == 0)
                return;
            foreach (var (tenant, queue) in pending.ToList())
            {
                var kept = new Queue<WorkItem>(queue.Count);
                foreach (var item in queue)
                {
                    if (item.IsCancelled)
                        pendingRows -= item.Texts.Count;
                    else
                        kept.Enqueue(item);
                }

                if (kept.Count == 0)
                    pending.Remove(tenant);
                else if (kept.Count != queue.Count)
                    pending[tenant] = kept;
            }

            ring = new Queue<string>(ring.Where(pending.ContainsKey));
            arrivals = new Queue<string>(arrivals.Where(pending.ContainsKey));
        }

        // Whether another tenant shares the backbone now: more than one has work queued, or queued some or was answered
        // within the last second (a light tenant's next request is on its way while its last one runs or was just answered).
        private bool Contended()
        {
            if (pending.Count > 1)
                return true;
            var now = Stopwatch.GetTimestamp();
            foreach (var (tenant, seen) in lastSeen.ToList())
            {
                if (Stopwatch.GetElapsedTime(seen, now) > ContentionWindow)
                    lastSeen.Remove(tenant);
            }

            return lastSeen.Count > 1;
        }

        // Round-robin: one request (part) per tenant per turn, so a tenant with a long queue waits behind itself. Tenants
        // that had nothing queued go first, ahead of any backlog; while tenants share the backbone, one tenant takes at
        // most MaxTenantBatchRows rows of a batch. A tenant whose next part does not fit is skipped and goes first next
        // time. Only work that tokenizes like the first pick joins (one tokenization per batch); the rest waits for a
        // later batch. With batching off a batch is one request.
        private List<WorkItem> Form()
        {
            foreach (var tenant in ring)
                arrivals.Enqueue(tenant);
            (ring, arrivals) = (arrivals, new Queue<string>());
            var batch = new List<WorkItem>();
            var skipped = new List<string>();
            var taken = new Dictionary<string, int>(StringComparer.Ordinal); // rows per tenant in this batch
            var share = Contended() ? owner.options.MaxTenantBatchRows : int.MaxValue;
            (int MaxLength, TokenizerSettings Tokenizer)? key = null;
            var rows = 0;
            var limit = int.MaxValue;
            while (ring.Count > 0 && (owner.options.Batching || batch.Count == 0))
            {
                var tenant = ring.Dequeue();
                var queue = pending[tenant];
                var item = queue.Peek();
                var mine = taken.GetValueOrDefault(tenant);
                if (key is null || (item.Key == key && rows + item.Texts.Count <= limit && mine + item.Texts.Count <= share))
                {
                    queue.Dequeue();
                    pendingRows -= item.Texts.Count;
                    if (item.TryTake()) // else cancelled just now: dropped
                    {
                        batch.Add(item);
                        rows += item.Texts.Count;
                        taken[tenant] = mine + item.Texts.Count;
                        key ??= item.Key;
                        limit = owner.RowsPerBatch(item.Key.MaxLength);
                    }
                }
                else
                {
                    skipped.Add(tenant); // rows only grow and the key is fixed: it would not fit later in this batch either
                    continue;
                }

                if (queue.Count > 0)
                    ring.Enqueue(tenant);
                else
                    pending.Remove(tenant);
            }

            foreach (var tenant in skipped)
                ring.Enqueue(tenant);
            return batch;
        }

        private void Run(List<WorkItem> batch)
        {
            var number = Interlocked.Increment(ref owner.batches);
            try
            {
                var now = Stopwatch.GetTimestamp();
                foreach (var item in batch.Where(i => !i.Deferred))
                    owner.metrics.Waited(Stopwatch.GetElapsedTime(item.Enqueued, now).TotalSeconds);
                if (owner.options.Batching)
                    RunShared(batch, number);
                else
                    RunAlone(batch[0], number);
            }
            catch (Exception e)
            {
                // One bad batch must not stop the loop; every caller in it gets the error.
                owner.logger.LogError(e, "Predict batch {Batch} on backbone {Backbone} failed", number, backbone.Id);
                foreach (var item in batch)
                    item.Result.TrySetException(e);
            }
            finally
            {
                var now = Stopwatch.GetTimestamp();
                foreach (var item in batch)
                    lastSeen[item.Tenant] = now;
            }
        }

        // Batching off: the request's own forward(s), the lone path, as before the batcher.
        private void RunAlone(WorkItem item, long number)
        {
            var timings = new PredictionTimings();
            var predictions = AdapterPredictor.Predict(backbone, item.Adapter, item.Texts, item.Pairs, timings);
            owner.metrics.Batch(backbone.Id, item.Texts.Count, 1, timings.Backbone.TotalSeconds);
            item.Result.TrySetResult(new BatchedPrediction(predictions.ToArray(), number));
        }

        // One segment per part, so each is answered as soon as its rows are through (each adapter's side network still
        // runs once over all its parts finished by the same forward). The parts of tenants with more work queued are
        // deferrable: their rows run after everyone else's, and a tenant arriving meanwhile stops the batch at the next
        // forward boundary that leaves no part half computed (see ShouldYield); the parts not started go back to the
        // head of their tenant's queue.
        private void RunShared(List<WorkItem> batch, long number)
        {
            var segments = batch.Select(i => new SharedForwardPredictor.Segment(i.Adapter, i.Texts, i.Pairs, Deferrable: pending.ContainsKey(i.Tenant))).ToList();
            var timings = new SharedForwardTimings();
            var control = new SharedForwardControl { Answered = (n, outcome) => Answer(batch[n], outcome, number), ShouldYield = ShouldYield };
            var outcomes = SharedForwardPredictor.PredictEach(backbone, segments, timings, owner.options.MaxForwardRows, owner.options.MaxForwardTokens, control);
            var deferred = batch.Where((_, n) => outcomes[n].IsDeferred).ToList();
            var answered = batch.Count - deferred.Count;
            var rows = batch.Sum(i => i.Texts.Count) - deferred.Sum(i => i.Texts.Count);
            Interlocked.Add(ref owner.deferredParts, deferred.Count);
            owner.metrics.Deferred(deferred.Count);
            owner.metrics.Batch(backbone.Id, rows, answered, timings.TokenizeSeconds + timings.ForwardSeconds);
            owner.metrics.Stages(backbone.Id, timings.TokenizeSeconds, timings.ForwardSeconds, timings.HeadsSeconds, timings.Width);
            if (owner.logger.IsEnabled(LogLevel.Debug))
                owner.logger.LogDebug(
                    "Batch {Batch}: {Rows} rows of {Requests} requests answered, {Deferred} handed back; width {Width}, {Forwards} of {Planned} forwards over {PaddedTokens} padded tokens; " +
                    "tokenize {Tokenize:F1} ms, forward {Forward:F1} ms, heads {Heads:F1} ms; thread {Thread}, torch threads {TorchThreads}",
                    number, rows, answered, deferred.Count, timings.Width, timings.Forwards, timings.PlannedForwards, timings.PaddedTokens, timings.TokenizeSeconds * 1000,
                    timings.ForwardSeconds * 1000, timings.HeadsSeconds * 1000, Environment.CurrentManagedThreadId, TorchSharp.torch.get_num_threads());
            Requeue(deferred); // last: nothing after it can fail the batch and answer parts that are queued again
        }

        private void Answer(WorkItem item, SegmentOutcome outcome, long number)
        {
            if (outcome.Predictions is { } predictions)
            {
                item.Result.TrySetResult(new BatchedPrediction(predictions, number));
            }
            else
            {
                owner.logger.LogError(outcome.Error, "Predict batch {Batch} on backbone {Backbone}: one adapter's side network failed", number, backbone.Id);
                item.Result.TrySetException(outcome.Error!);
            }
        }

        // Asked by a running batch between two forwards of backlogged tenants' rows that left no part half computed:
        // stop if a tenant that had nothing queued has sent work since the batch formed. It goes first in the next
        // batch, so it waits for the forward that was running when it arrived (with a flood's parts, one length of rows
        // filling whole forwards, every boundary qualifies), not for the rest of a backlog's batch.
        private bool ShouldYield()
        {
            Drain(channel.Reader);
            Sweep();
            return arrivals.Count > 0;
        }

        // Parts of a stopped batch go back to the head of their tenants' queues, in order, ahead of what the tenant queued
        // since; a tenant whose queue was emptied meanwhile (cancelled) rejoins the serving order at its end.
        private void Requeue(List<WorkItem> deferred)
        {
            foreach (var parts in deferred.GroupBy(i => i.Tenant))
            {
                var back = parts.Where(i => i.TryRequeue()).ToList();
                if (back.Count == 0)
                    continue;
                var tenant = parts.Key;
                var queued = pending.GetValueOrDefault(tenant);
                pending[tenant] = new Queue<WorkItem>(queued is null ? back : back.Concat(queued));
                pendingRows += back.Sum(i => i.Texts.Count);
                if (queued is null)
                    ring.Enqueue(tenant);
            }
        }
    }
}

/// <summary>A request's predictions in input order, and the number of the (last) shared forward that produced them.</summary>
internal sealed record BatchedPrediction(Prediction[] Predictions, long Batch);
