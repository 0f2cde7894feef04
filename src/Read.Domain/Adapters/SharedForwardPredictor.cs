using System.Diagnostics;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using static TorchSharp.torch;

namespace Read.Domain.Adapters;

/// <summary>
/// Shared backbone forwards for several adapters' inputs. A READ adapter only reads the frozen backbone's hidden states,
/// so rows of different adapters (and tenants) can share padded forwards exactly (the union is tokenized once and run
/// in length-sorted chunks); each side network then runs once on its own rows. Padding is masked (BERT) or after the real tokens (decoders, causal), so a row's states do not depend
/// on its batch-mates beyond float rounding.
/// </summary>
public static class SharedForwardPredictor
{
    /// <summary>
    /// One caller's slice of a shared batch: its adapter, texts and pairs. A <paramref name="Deferrable"/> segment's rows
    /// run after every other segment's, and a <see cref="SharedForwardControl.ShouldYield"/> that answers true hands it
    /// back unrun (<see cref="SegmentOutcome.IsDeferred"/>): the batcher marks the parts of tenants with more work queued.
    /// </summary>
    public sealed record Segment(LoadedAdapter Adapter, IReadOnlyList<string> Texts, IReadOnlyList<string?>? Pairs, bool Deferrable = false);

    /// <summary>
    /// Predictions per segment, in input order, from one tokenization of the segments' union, run in length-sorted
    /// backbone forwards (<see cref="DefaultForwardRows"/> rows, <see cref="DefaultForwardTokens"/> padded tokens each; see
    /// <see cref="PredictEach"/>). Every segment must tokenize alike (same max length and tokenizer settings; see
    /// <see cref="EncodingKey"/>); the caller groups them.
    /// <paramref name="backboneSeconds"/> gets the tokenization + forward time.
    /// </summary>
    public static IReadOnlyList<Prediction[]> Predict(Backbone backbone, IReadOnlyList<Segment> segments, out double backboneSeconds)
    {
        var timings = new SharedForwardTimings();
        var outcomes = PredictEach(backbone, segments, timings);
        backboneSeconds = timings.TokenizeSeconds + timings.ForwardSeconds;
        return outcomes.Select(o => o.Predictions ?? throw o.Error!).ToList();
    }

    /// <summary>Rows per backbone forward when the caller names none: on a CPU an 8–16-row forward already keeps the cores' matmuls busy.</summary>
    public const int DefaultForwardRows = 16;

    /// <summary>Padded tokens per backbone forward when the caller names none.</summary>
    public const int DefaultForwardTokens = 1024;

    /// <summary>
    /// As above, but one outcome per segment: a segment whose side network throws gets its exception and the others
    /// their predictions. <paramref name="timings"/> gets where the batch's time went (tokenize, forward, heads) and its
    /// padding. The union is tokenized once and run in length-sorted forwards (see <see cref="ForwardBatch"/>): first the rows
    /// of segments that are not deferrable, then the deferrable ones'. A segment's side network runs as soon as its last
    /// row is through a forward (once per adapter over every segment finished by the same forward), and
    /// <paramref name="control"/> hears of it then, so its caller need not wait for the rest of the batch. Between two
    /// forwards of deferrable rows that left no segment half computed, <paramref name="control"/> may stop the batch: the
    /// segments not started come back <see cref="SegmentOutcome.IsDeferred"/>, and no computed row is thrown away.
    /// </summary>
    public static IReadOnlyList<SegmentOutcome> PredictEach(
        Backbone backbone, IReadOnlyList<Segment> segments, SharedForwardTimings timings, int forwardRows = DefaultForwardRows,
        int forwardTokens = DefaultForwardTokens, SharedForwardControl? control = null)
    {
        ArgumentNullException.ThrowIfNull(timings);
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(segments);
        if (segments.Count == 0)
            return [];
        var key = EncodingKey(segments[0].Adapter);
        foreach (var segment in segments)
        {
            if (!string.Equals(segment.Adapter.Config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"The adapter belongs to backbone weights {segment.Adapter.Config.BackboneWeightsHash}, not {backbone.WeightsHash}.");
            if (EncodingKey(segment.Adapter) != key)
                throw new ArgumentException("Segments of one shared forward must share max length and tokenizer settings.", nameof(segments));
            if (segment.Pairs is not null && segment.Pairs.Count != segment.Texts.Count)
                throw new ArgumentException("pairs must have one entry per text.", nameof(segments));
        }

        var texts = segments.SelectMany(s => s.Texts).ToList();
        // Encode takes one pair list for the batch: rows without a pair get null.
        var pairs = segments.Any(s => s.Pairs is not null)
            ? segments.SelectMany(s => s.Pairs ?? Enumerable.Repeat<string?>(null, s.Texts.Count)).ToList()
            : null;

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        using var encoded = backbone.Encode(texts, pairs, key.MaxLength, key.Tokenizer);
        timings.TokenizeSeconds = clock.Elapsed.TotalSeconds;

        var batch = new ForwardBatch(backbone, encoded, segments, forwardRows, forwardTokens, timings);
        var results = new SegmentOutcome?[segments.Count];
        for (var n = 0; n < batch.Chunks.Count; n++)
        {
            // A stop hands back whole segments only, never computed rows: it is offered between two forwards of deferrable
            // rows that left none of them half computed (rows of one length keep their order when sorted, so segments of
            // MaxForwardRows such rows fill whole forwards and every boundary qualifies).
            if (n > 0 && batch.Chunks[n - 1].Deferrable && !batch.AnyPartlyComputed && control?.ShouldYield is { } shouldYield && shouldYield())
                break; // the rest is deferrable (it runs last): hand it back
            RunHeads(batch, batch.Run(n), results, control, timings);
        }

        return results.Select(r => r ?? SegmentOutcome.Deferred).ToArray();
    }

    // The side networks of the segments a forward finished: once per adapter over all its finished rows.
    private static void RunHeads(ForwardBatch batch, IReadOnlyList<int> finished, SegmentOutcome?[] results, SharedForwardControl? control, SharedForwardTimings timings)
    {
        if (finished.Count == 0)
            return;
        var clock = Stopwatch.StartNew();
        foreach (var group in finished.GroupBy(n => batch.Segments[n].Adapter))
        {
            var members = group.ToList();
            try
            {
                using var headScope = NewDisposeScope();
                var adapter = group.Key;
                var config = adapter.Config;
                var (hidden, mask) = batch.StatesOf(members);
                var rows = members.Sum(n => batch.Segments[n].Texts.Count);
                var (states, owners) = HiddenStateGather.Gather(hidden, mask, adapter.Layout.Channels, config.Pooling);
                // The side network on the backbone's device (Read:Device), the outputs copied back to read them.
                var outputs = adapter.ClassifierOn(batch.Backbone.Device).Forward(states, owners, rows).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                var predictions = AdapterPredictor.Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1);
                var offset = 0;
                foreach (var n in members)
                {
                    var count = batch.Segments[n].Texts.Count;
                    results[n] = new SegmentOutcome(predictions[offset..(offset + count)], null);
                    offset += count;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // One adapter's side network failing (say, disposed under a bug) fails only its own callers.
                foreach (var n in members)
                    results[n] = new SegmentOutcome(null, e);
            }
        }

        timings.HeadsSeconds += clock.Elapsed.TotalSeconds;
        foreach (var n in finished)
            control?.Answered?.Invoke(n, results[n]!);
    }

    /// <summary>
    /// The backbone's states for a batch's rows, filled in forward by forward: rows in length-sorted chunks of at most
    /// <c>forwardRows</c> rows and about <c>forwardTokens</c> padded tokens, the non-deferrable segments' rows first.
    /// Padding the whole union to its longest text wastes compute on short rows (the load test measured 64-row forwards
    /// costing more per text than 8-row ones); sorted chunks pad each row only to its neighbours' length. States are kept
    /// as (N, S, d) tensors in row order; positions past a row's length stay zero: no head reads them (masked or before
    /// the last real token).
    /// </summary>
    private sealed class ForwardBatch
    {
        private readonly EncodedBatch encoded;
        private readonly SharedForwardTimings timings;
        private readonly int[] lengths;
        private readonly int[] segmentOf; // row → segment
        private readonly int[] offsets; // segment → its first row
        private readonly int[] rowsLeft; // segment → rows not yet through a forward
        private Tensor[]? hidden; // L + 1 × (N, S, d), allocated at the first forward

        public ForwardBatch(Backbone backbone, EncodedBatch encoded, IReadOnlyList<Segment> segments, int forwardRows, int forwardTokens, SharedForwardTimings timings)
        {
            Backbone = backbone;
            Segments = segments;
            this.encoded = encoded;
            this.timings = timings;
            lengths = encoded.AttentionMask.sum(1).cpu().data<long>().Select(l => (int)l).ToArray();
            segmentOf = new int[lengths.Length];
            offsets = new int[segments.Count];
            rowsLeft = new int[segments.Count];
            var row = 0;
            for (var n = 0; n < segments.Count; n++)
            {
                offsets[n] = row;
                rowsLeft[n] = segments[n].Texts.Count;
                for (var i = 0; i < segments[n].Texts.Count; i++)
                    segmentOf[row++] = n;
            }

            // Non-deferrable rows first, each class sorted by length on its own.
            Chunks = [.. Plan(deferrable: false), .. Plan(deferrable: true)];
            timings.Width = (int)encoded.InputIds.shape[1];
            timings.PlannedForwards = Chunks.Count;
            return;

            IEnumerable<(int[] Rows, bool Deferrable)> Plan(bool deferrable)
            {
                var rows = Enumerable.Range(0, lengths.Length).Where(r => segments[segmentOf[r]].Deferrable == deferrable).ToArray();
                return TokenLengths.SortedBatches(rows.Select(r => lengths[r]).ToArray(), Math.Max(1, forwardRows), Math.Max(1, forwardTokens))
                    .Select(chunk => (chunk.Select(i => rows[i]).ToArray(), deferrable));
            }
        }

        public Backbone Backbone { get; }

        public IReadOnlyList<Segment> Segments { get; }

        public IReadOnlyList<(int[] Rows, bool Deferrable)> Chunks { get; }

        /// <summary>Whether some segment has rows through a forward and rows not yet.</summary>
        public bool AnyPartlyComputed => Enumerable.Range(0, rowsLeft.Length).Any(n => rowsLeft[n] > 0 && rowsLeft[n] < Segments[n].Texts.Count);

        /// <summary>Runs chunk <paramref name="n"/>'s forward; returns the segments whose last rows it computed.</summary>
        public IReadOnlyList<int> Run(int n)
        {
            var clock = Stopwatch.StartNew();
            var chunk = Chunks[n].Rows;
            var w = Math.Max(1, chunk.Max(i => lengths[i]));
            if (chunk.Length == lengths.Length)
            {
                hidden = Backbone.HiddenStates(encoded); // one forward over the whole batch, in row order
            }
            else
            {
                using var chunkScope = NewDisposeScope();
                var rows = tensor(chunk.Select(i => (long)i).ToArray(), device: encoded.InputIds.device);
                var part = new EncodedBatch(
                    encoded.InputIds.index_select(0, rows).narrow(1, 0, w), encoded.AttentionMask.index_select(0, rows).narrow(1, 0, w),
                    encoded.TokenTypeIds.index_select(0, rows).narrow(1, 0, w));
                var states = Backbone.HiddenStates(part);
                if (hidden is null)
                {
                    var width = encoded.InputIds.shape[1];
                    hidden = states.Select(s => zeros([lengths.Length, width, s.shape[2]], dtype: s.dtype, device: s.device)).ToArray();
                    foreach (var h in hidden)
                        h.MoveToOuterDisposeScope();
                }

                for (var l = 0; l < states.Length; l++)
                    hidden[l].narrow(1, 0, w).index_copy_(0, rows, states[l]);
            }

            timings.Forwards++;
            timings.PaddedTokens += (long)chunk.Length * w;
            timings.ForwardSeconds += clock.Elapsed.TotalSeconds;
            var finished = new List<int>();
            foreach (var row in chunk)
            {
                if (--rowsLeft[segmentOf[row]] == 0)
                    finished.Add(segmentOf[row]);
            }

            finished.Sort();
            return finished;
        }

        /// <summary>The states and attention mask of the given (finished) segments' rows, in their order.</summary>
        public (Tensor[] Hidden, Tensor Mask) StatesOf(IReadOnlyList<int> members)
        {
            var contiguous = members.Zip(members.Skip(1)).All(p => offsets[p.Second] == offsets[p.First] + Segments[p.First].Texts.Count);
            var first = offsets[members[0]];
            var count = members.Sum(n => Segments[n].Texts.Count);
            if (contiguous) // narrow on dim 0 of a contiguous tensor stays contiguous, so Gather's reshape is a view
                return (hidden!.Select(h => h.narrow(0, first, count)).ToArray(), encoded.AttentionMask.narrow(0, first, count));
            var rows = tensor(members.SelectMany(n => Enumerable.Range(offsets[n], Segments[n].Texts.Count)).Select(r => (long)r).ToArray(), device: encoded.InputIds.device);
            return (hidden!.Select(h => h.index_select(0, rows)).ToArray(), encoded.AttentionMask.index_select(0, rows));
        }
    }

    /// <summary>What must match for two adapters' inputs to share one tokenization and forward.</summary>
    public static (int MaxLength, TokenizerSettings Tokenizer) EncodingKey(LoadedAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        return (adapter.Config.MaxLength, adapter.Config.Tokenizer.Settings);
    }
}

/// <summary>One segment's predictions, or the exception its side network threw; neither when the batch stopped before it.</summary>
public sealed record SegmentOutcome(Prediction[]? Predictions, Exception? Error)
{
    /// <summary>The outcome of a segment handed back unrun (see <see cref="SharedForwardControl.ShouldYield"/>).</summary>
    public static SegmentOutcome Deferred { get; } = new(null, null);

    public bool IsDeferred => Predictions is null && Error is null;
}

/// <summary>How the caller of <see cref="SharedForwardPredictor.PredictEach"/> hears of finished segments and stops a batch early.</summary>
public sealed class SharedForwardControl
{
    /// <summary>Told of each segment (by index) as soon as its rows are through the forward and its side network.</summary>
    public Action<int, SegmentOutcome>? Answered { get; init; }

    /// <summary>
    /// Asked between two forwards of deferrable segments' rows when no segment is half computed; true stops the batch
    /// there, and the segments not started come back <see cref="SegmentOutcome.IsDeferred"/>. At least one forward of
    /// deferrable rows runs first, so a batch always makes progress.
    /// </summary>
    public Func<bool>? ShouldYield { get; init; }
}

/// <summary>Where one shared forward's time went, and the width (tokens) its rows were padded to.</summary>
public sealed class SharedForwardTimings
{
    public double TokenizeSeconds { get; internal set; }

    public double ForwardSeconds { get; internal set; }

    public double HeadsSeconds { get; internal set; }

    /// <summary>Width (tokens) of the union's tokenization: its longest row.</summary>
    public int Width { get; internal set; }

    /// <summary>Backbone forwards the union ran in (length-sorted chunks).</summary>
    public int Forwards { get; internal set; }

    /// <summary>Backbone forwards the union was planned in (more than <see cref="Forwards"/> when the batch stopped early).</summary>
    public int PlannedForwards { get; internal set; }

    /// <summary>Tokens the forwards computed, padding included.</summary>
    public long PaddedTokens { get; internal set; }
}
