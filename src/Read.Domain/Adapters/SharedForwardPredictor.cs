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
    /// <summary>One adapter's slice of a shared batch.</summary>
    public sealed record Segment(LoadedAdapter Adapter, IReadOnlyList<string> Texts, IReadOnlyList<string?>? Pairs);

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
    /// padding. The union is tokenized once and run in length-sorted forwards (see <see cref="Forward"/>).
    /// </summary>
    public static IReadOnlyList<SegmentOutcome> PredictEach(
        Backbone backbone, IReadOnlyList<Segment> segments, SharedForwardTimings timings, int forwardRows = DefaultForwardRows, int forwardTokens = DefaultForwardTokens)
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
        clock.Restart();
        var hidden = Forward(backbone, encoded, forwardRows, forwardTokens, timings); // L + 1 × (N, S, d)
        timings.ForwardSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        var results = new SegmentOutcome[segments.Count];
        var offset = 0;
        for (var n = 0; n < segments.Count; n++)
        {
            var segment = segments[n];
            var rows = segment.Texts.Count;
            try
            {
                using var headScope = NewDisposeScope();
                var config = segment.Adapter.Config;
                // narrow on dim 0 of a contiguous tensor stays contiguous, so Gather's reshape is a view.
                var mine = hidden.Select(h => h.narrow(0, offset, rows)).ToArray(); // (rows, S, d) each
                var (states, owners) = HiddenStateGather.Gather(mine, encoded.AttentionMask.narrow(0, offset, rows), segment.Adapter.Layout.Channels, config.Pooling);
                // The side network on the backbone's device (Read:Device), the outputs copied back to read them.
                var outputs = segment.Adapter.ClassifierOn(backbone.Device).Forward(states, owners, rows).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                results[n] = new SegmentOutcome(AdapterPredictor.Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1), null);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // One adapter's side network failing (say, disposed under a bug) fails only its own callers.
                results[n] = new SegmentOutcome(null, e);
            }

            offset += rows;
        }

        timings.HeadsSeconds = clock.Elapsed.TotalSeconds;
        return results;
    }

    /// <summary>
    /// The backbone's states for every row of <paramref name="encoded"/>, as (N, S, d) tensors in row order, computed in
    /// length-sorted forwards of at most <paramref name="forwardRows"/> rows and about <paramref name="forwardTokens"/>
    /// padded tokens. Padding the whole union to its longest text wastes compute on short rows (the load test measured
    /// 64-row forwards costing more per text than 8-row ones); sorted chunks pad each row only to its neighbours' length.
    /// Positions past a row's length stay zero: no head reads them (masked or before the last real token).
    /// </summary>
    private static Tensor[] Forward(Backbone backbone, EncodedBatch encoded, int forwardRows, int forwardTokens, SharedForwardTimings timings)
    {
        var n = (int)encoded.InputIds.shape[0];
        var width = (int)encoded.InputIds.shape[1];
        var lengths = encoded.AttentionMask.sum(1).cpu().data<long>().Select(l => (int)l).ToArray();
        var chunks = TokenLengths.SortedBatches(lengths, Math.Max(1, forwardRows), Math.Max(1, forwardTokens));
        timings.Forwards = chunks.Count;
        timings.PaddedTokens = chunks.Sum(c => (long)c.Length * Math.Max(1, c.Max(i => lengths[i])));
        timings.Width = width;
        if (chunks.Count == 1)
            return backbone.HiddenStates(encoded);
        Tensor[]? hidden = null;
        foreach (var chunk in chunks)
        {
            using var chunkScope = NewDisposeScope();
            var rows = tensor(chunk.Select(i => (long)i).ToArray(), device: encoded.InputIds.device);
            var w = Math.Max(1, chunk.Max(i => lengths[i]));
            var part = new EncodedBatch(
                encoded.InputIds.index_select(0, rows).narrow(1, 0, w), encoded.AttentionMask.index_select(0, rows).narrow(1, 0, w),
                encoded.TokenTypeIds.index_select(0, rows).narrow(1, 0, w));
            var states = backbone.HiddenStates(part);
            if (hidden is null)
            {
                hidden = states.Select(s => zeros([n, width, s.shape[2]], dtype: s.dtype, device: s.device)).ToArray();
                foreach (var h in hidden)
                    h.MoveToOuterDisposeScope();
            }

            for (var l = 0; l < states.Length; l++)
                hidden[l].narrow(1, 0, w).index_copy_(0, rows, states[l]);
        }

        return hidden!;
    }

    /// <summary>What must match for two adapters' inputs to share one tokenization and forward.</summary>
    public static (int MaxLength, TokenizerSettings Tokenizer) EncodingKey(LoadedAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        return (adapter.Config.MaxLength, adapter.Config.Tokenizer.Settings);
    }
}

/// <summary>One segment's predictions, or the exception its side network threw.</summary>
public sealed record SegmentOutcome(Prediction[]? Predictions, Exception? Error);

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

    /// <summary>Tokens the forwards computed, padding included.</summary>
    public long PaddedTokens { get; internal set; }
}
