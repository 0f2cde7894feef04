using System.Diagnostics;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using static TorchSharp.torch;

namespace Read.Domain.Adapters;

/// <summary>
/// One backbone forward for several adapters' inputs. A READ adapter only reads the frozen backbone's hidden states,
/// so rows of different adapters (and tenants) can share a padded batch exactly; each side network then runs on its
/// own rows. Padding is masked (BERT) or after the real tokens (decoders, causal), so a row's states do not depend
/// on its batch-mates beyond float rounding.
/// </summary>
public static class SharedForwardPredictor
{
    /// <summary>One adapter's slice of a shared batch.</summary>
    public sealed record Segment(LoadedAdapter Adapter, IReadOnlyList<string> Texts, IReadOnlyList<string?>? Pairs);

    /// <summary>
    /// Predictions per segment, in input order, from one <see cref="Backbone.HiddenStates"/> call. Every segment must
    /// tokenize alike (same max length and tokenizer settings; see <see cref="EncodingKey"/>); the caller groups them.
    /// <paramref name="backboneSeconds"/> gets the tokenization + forward time.
    /// </summary>
    public static IReadOnlyList<Prediction[]> Predict(Backbone backbone, IReadOnlyList<Segment> segments, out double backboneSeconds)
    {
        var timings = new SharedForwardTimings();
        var results = Predict(backbone, segments, timings);
        backboneSeconds = timings.TokenizeSeconds + timings.ForwardSeconds;
        return results;
    }

    /// <summary>As above; <paramref name="timings"/> gets where the batch's time went (tokenize, forward, heads) and its padded width.</summary>
    public static IReadOnlyList<Prediction[]> Predict(Backbone backbone, IReadOnlyList<Segment> segments, SharedForwardTimings timings)
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
        timings.Width = (int)encoded.InputIds.shape[1];
        clock.Restart();
        var hidden = backbone.HiddenStates(encoded); // L + 1 × (N, S, d)
        timings.ForwardSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();

        var results = new List<Prediction[]>(segments.Count);
        var offset = 0;
        foreach (var segment in segments)
        {
            var rows = segment.Texts.Count;
            var config = segment.Adapter.Config;
            // narrow on dim 0 of a contiguous tensor stays contiguous, so Gather's reshape is a view.
            var mine = hidden.Select(h => h.narrow(0, offset, rows)).ToArray(); // (rows, S, d) each
            var (states, owners) = HiddenStateGather.Gather(mine, encoded.AttentionMask.narrow(0, offset, rows), segment.Adapter.Layout.Channels, config.Pooling);
            // The side network on the backbone's device (Read:Device), the outputs copied back to read them.
            var outputs = segment.Adapter.ClassifierOn(backbone.Device).Forward(states, owners, rows).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
            results.Add(AdapterPredictor.Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1));
            offset += rows;
        }

        timings.HeadsSeconds = clock.Elapsed.TotalSeconds;
        return results;
    }

    /// <summary>What must match for two adapters' inputs to share one tokenization and forward.</summary>
    public static (int MaxLength, TokenizerSettings Tokenizer) EncodingKey(LoadedAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        return (adapter.Config.MaxLength, adapter.Config.Tokenizer.Settings);
    }
}

/// <summary>Where one shared forward's time went, and the width (tokens) its rows were padded to.</summary>
public sealed class SharedForwardTimings
{
    public double TokenizeSeconds { get; internal set; }

    public double ForwardSeconds { get; internal set; }

    public double HeadsSeconds { get; internal set; }

    public int Width { get; internal set; }
}
