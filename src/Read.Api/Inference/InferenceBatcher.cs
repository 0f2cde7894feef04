using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Options;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Inference;

/// <summary>
/// Gathers concurrent predicts (any tenant, any adapter) per backbone for up to <see cref="InferenceOptions.MaxBatchDelayMs"/>
/// into one backbone forward, then runs each adapter's side network on its own rows (see <see cref="SharedForwardPredictor"/>).
/// Admission is bounded (<see cref="InferenceOptions.MaxQueuedRequests"/>; past it <see cref="InferenceQueueFullException"/>),
/// and batches are formed round-robin over tenants so one tenant's flood waits behind itself, not in front of others.
/// </summary>
internal sealed class InferenceBatcher : IAsyncDisposable
{
    private readonly InferenceOptions options;
    private readonly InferenceMetrics metrics;
    private readonly ILogger<InferenceBatcher> logger;
    private readonly ConcurrentDictionary<Backbone, Lane> lanes = new();
    private readonly CancellationTokenSource stopping = new();
    private int admitted;
    private long batches;

    public InferenceBatcher(IOptions<InferenceOptions> options, InferenceMetrics metrics, ILogger<InferenceBatcher> logger)
    {
        this.options = options.Value;
        this.metrics = metrics;
        this.logger = logger;
    }

    /// <summary>Requests admitted and not yet answered.</summary>
    public int QueueDepth => Volatile.Read(ref admitted);

    /// <summary>Shared forwards run so far (all backbones).</summary>
    public long BatchesRun => Interlocked.Read(ref batches);

    /// <summary>
    /// The predictions a lone <see cref="AdapterPredictor.Predict(Backbone, LoadedAdapter, IReadOnlyList{string}, IReadOnlyList{string?}?)"/>
    /// would give, and the (highest) batch number that served them. The caller keeps its lease until this completes.
    /// </summary>
    public async Task<BatchedPrediction> PredictAsync(
        string tenant, Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, CancellationToken ct)
    {
        if (Interlocked.Increment(ref admitted) > options.MaxQueuedRequests)
        {
            Interlocked.Decrement(ref admitted);
            metrics.Rejected();
            throw new InferenceQueueFullException(options.MaxQueuedRequests);
        }

        metrics.Queued(1);
        try
        {
            if (!options.Batching)
            {
                var timings = new PredictionTimings();
                var alone = await Task.Run(() => AdapterPredictor.Predict(backbone, adapter, texts, pairs, timings), ct);
                metrics.Batch(backbone.Id, texts.Count, 1, timings.Backbone.TotalSeconds);
                return new BatchedPrediction(alone.ToArray(), Interlocked.Increment(ref batches));
            }

            return await EnqueueAsync(tenant, backbone, adapter, texts, pairs, ct);
        }
        finally
        {
            Interlocked.Decrement(ref admitted);
            metrics.Queued(-1);
        }
    }

    private async Task<BatchedPrediction> EnqueueAsync(
        string tenant, Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, CancellationToken ct)
    {
        var key = SharedForwardPredictor.EncodingKey(adapter);
        var chunk = RowsPerBatch(key.MaxLength);
        var lane = lanes.GetOrAdd(backbone, b => new Lane(this, b));
        // A request larger than a batch is split; its parts queue like separate requests of the same tenant.
        var parts = new List<WorkItem>();
        for (var start = 0; start < texts.Count; start += chunk)
        {
            var count = Math.Min(chunk, texts.Count - start);
            var item = new WorkItem(tenant, adapter, key, Slice(texts, start, count), pairs is null ? null : Slice(pairs, start, count), ct);
            parts.Add(item);
            if (!lane.Writer.TryWrite(item))
                throw new ObjectDisposedException(nameof(InferenceBatcher));
        }

        var results = await Task.WhenAll(parts.Select(p => p.Result.Task));
        return new BatchedPrediction(results.SelectMany(r => r.Predictions).ToArray(), results.Max(r => r.Batch));
    }

    private int RowsPerBatch(int maxLength) => Math.Max(1, Math.Min(options.MaxBatchRows, options.MaxBatchTokens / Math.Max(1, maxLength)));

    private static IReadOnlyList<T> Slice<T>(IReadOnlyList<T> list, int start, int count) =>
        start == 0 && count == list.Count ? list : list.Skip(start).Take(count).ToArray();

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync();
        foreach (var lane in lanes.Values)
            lane.Writer.TryComplete();
        await Task.WhenAll(lanes.Values.Select(l => l.Loop));
        stopping.Dispose();
    }

    private sealed record WorkItem(
        string Tenant, LoadedAdapter Adapter, (int MaxLength, TokenizerSettings Tokenizer) Key, IReadOnlyList<string> Texts,
        IReadOnlyList<string?>? Pairs, CancellationToken Cancellation)
    {
        public TaskCompletionSource<BatchedPrediction> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Enqueued { get; } = Stopwatch.GetTimestamp();
    }

    /// <summary>One backbone's queue and the loop that drains it: pending work per tenant, and the tenants in serving order.</summary>
    private sealed class Lane
    {
        private readonly InferenceBatcher owner;
        private readonly Backbone backbone;
        private readonly Channel<WorkItem> channel = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true });
        private readonly Dictionary<string, Queue<WorkItem>> pending = new(StringComparer.Ordinal);
        private readonly Queue<string> ring = new();
        private int pendingRows;

        public Lane(InferenceBatcher owner, Backbone backbone)
        {
            this.owner = owner;
            this.backbone = backbone;
            Loop = Task.Run(RunAsync);
        }

        public ChannelWriter<WorkItem> Writer => channel.Writer;

        public Task Loop { get; }

        private async Task RunAsync()
        {
            var ct = owner.stopping.Token;
            var reader = channel.Reader;
            Exception? failure = null;
            try
            {
                while (true)
                {
                    if (ring.Count == 0 && !await reader.WaitToReadAsync(ct))
                        break;
                    Drain(reader);
                    await GatherAsync(reader, ct);
                    var batch = Form();
                    if (batch.Count > 0)
                        Run(batch);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                // A fault outside a batch (gathering, forming): the lane cannot go on. Closing the channel makes later
                // requests fail at once instead of waiting on a loop that is gone; the queued ones fail below.
                owner.logger.LogCritical(e, "Inference lane stopped by an unexpected error");
                channel.Writer.TryComplete(e);
                owner.lanes.TryRemove(new KeyValuePair<Backbone, Lane>(backbone, this)); // the next request starts a fresh lane
                failure = e;
            }

            // Stopping (or stopped): whatever is still queued fails rather than hangs.
            Drain(reader);
            foreach (var item in pending.Values.SelectMany(q => q))
                item.Result.TrySetException(failure ?? new ObjectDisposedException(nameof(InferenceBatcher)));
        }

        // The gather window: more requests may join until the batch is full or the delay since the first one ran out.
        private async Task GatherAsync(ChannelReader<WorkItem> reader, CancellationToken ct)
        {
            var delay = owner.options.MaxBatchDelayMs;
            if (delay == 0 || pendingRows >= owner.options.MaxBatchRows)
                return;
            using var window = CancellationTokenSource.CreateLinkedTokenSource(ct);
            window.CancelAfter(delay);
            try
            {
                while (pendingRows < owner.options.MaxBatchRows && await reader.WaitToReadAsync(window.Token))
                    Drain(reader);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
            }
        }

        private void Drain(ChannelReader<WorkItem> reader)
        {
            while (reader.TryRead(out var item))
            {
                if (!pending.TryGetValue(item.Tenant, out var queue))
                {
                    pending[item.Tenant] = queue = new Queue<WorkItem>();
                    ring.Enqueue(item.Tenant);
                }

                queue.Enqueue(item);
                pendingRows += item.Texts.Count;
            }
        }

        // Round-robin: one request per tenant per turn, so a tenant with a long queue waits behind itself. A tenant whose
        // next request does not fit is skipped and goes first next time. Only work that tokenizes like the first pick
        // joins (one tokenization per forward); the rest waits for a later batch.
        private List<WorkItem> Form()
        {
            var batch = new List<WorkItem>();
            var skipped = new List<string>();
            (int MaxLength, TokenizerSettings Tokenizer)? key = null;
            var rows = 0;
            var limit = int.MaxValue;
            while (ring.Count > 0)
            {
                var tenant = ring.Dequeue();
                var queue = pending[tenant];
                var item = queue.Peek();
                if (item.Cancellation.IsCancellationRequested)
                {
                    queue.Dequeue();
                    pendingRows -= item.Texts.Count;
                    item.Result.TrySetCanceled(item.Cancellation);
                }
                else if (key is null || (item.Key == key && rows + item.Texts.Count <= limit))
                {
                    queue.Dequeue();
                    pendingRows -= item.Texts.Count;
                    batch.Add(item);
                    rows += item.Texts.Count;
                    key ??= item.Key;
                    limit = owner.RowsPerBatch(item.Key.MaxLength);
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
                foreach (var item in batch)
                    owner.metrics.Waited(Stopwatch.GetElapsedTime(item.Enqueued, now).TotalSeconds);
                var timings = new SharedForwardTimings();
                var outcomes = SharedForwardPredictor.PredictEach(
                    backbone, batch.Select(i => new SharedForwardPredictor.Segment(i.Adapter, i.Texts, i.Pairs)).ToList(), timings,
                    owner.options.MaxForwardRows, owner.options.MaxForwardTokens);
                var rows = batch.Sum(i => i.Texts.Count);
                owner.metrics.Batch(backbone.Id, rows, batch.Count, timings.TokenizeSeconds + timings.ForwardSeconds);
                owner.metrics.Stages(backbone.Id, timings.TokenizeSeconds, timings.ForwardSeconds, timings.HeadsSeconds, timings.Width);
                if (owner.logger.IsEnabled(LogLevel.Debug))
                    owner.logger.LogDebug(
                        "Batch {Batch}: {Rows} rows of {Requests} requests, width {Width}, {Forwards} forwards over {PaddedTokens} padded tokens; " +
                        "tokenize {Tokenize:F1} ms, forward {Forward:F1} ms, heads {Heads:F1} ms; thread {Thread}, torch threads {TorchThreads}",
                        number, rows, batch.Count, timings.Width, timings.Forwards, timings.PaddedTokens, timings.TokenizeSeconds * 1000, timings.ForwardSeconds * 1000,
                        timings.HeadsSeconds * 1000, Environment.CurrentManagedThreadId, TorchSharp.torch.get_num_threads());
                for (var i = 0; i < batch.Count; i++)
                {
                    if (outcomes[i].Predictions is { } predictions)
                        batch[i].Result.TrySetResult(new BatchedPrediction(predictions, number));
                    else
                    {
                        owner.logger.LogError(outcomes[i].Error, "Predict batch {Batch} on backbone {Backbone}: one adapter's side network failed", number, backbone.Id);
                        batch[i].Result.TrySetException(outcomes[i].Error!);
                    }
                }
            }
            catch (Exception e)
            {
                // One bad batch must not stop the loop; every caller in it gets the error.
                owner.logger.LogError(e, "Predict batch {Batch} on backbone {Backbone} failed", number, backbone.Id);
                foreach (var item in batch)
                    item.Result.TrySetException(e);
            }
        }
    }
}

/// <summary>A request's predictions in input order, and the number of the (last) shared forward that produced them.</summary>
internal sealed record BatchedPrediction(Prediction[] Predictions, long Batch);
