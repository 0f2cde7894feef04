using System.Diagnostics;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Adapters;

/// <summary>The inference path: backbone forward (no_grad), side network and head over packed positions, decoded.</summary>
public sealed class AdapterPredictor
{
    private const int MaxBatchExamples = 32;
    private const int TokenBudget = 4096;

    private AdapterPredictor()
    {
    }

    /// <summary>Predictions in input order. Inputs are run in length-sorted batches so the backbone pads little.</summary>
    public static IReadOnlyList<Prediction> Predict(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs) =>
        Predict(backbone, adapter, texts, pairs, null);

    /// <summary>As above; <paramref name="timings"/>, when given, accumulates the time spent in the backbone and in the side network + head.</summary>
    public static IReadOnlyList<Prediction> Predict(
        Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, PredictionTimings? timings)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(texts);
        if (!string.Equals(adapter.Config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"The adapter belongs to backbone weights {adapter.Config.BackboneWeightsHash}, not {backbone.WeightsHash}.");
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException("pairs must have one entry per text.", nameof(pairs));

        var config = adapter.Config;
        // Inputs are tokenized exactly as the training examples were, even if the backbone's default changed since.
        var tokenizer = config.Tokenizer.Settings;
        // Sorting needs a tokenization pass; for a single batch it cannot save padding, so skip it.
        var batches = texts.Count <= MaxBatchExamples
            ? [Enumerable.Range(0, texts.Count).ToArray()]
            : TokenLengths.SortedBatches(TokenLengths.Of(backbone, texts, pairs, config.MaxLength, tokenizer), MaxBatchExamples, TokenBudget);
        var predictions = new Prediction[texts.Count];
        var classifier = adapter.ClassifierOn(backbone.Device);
        using var noGrad = no_grad();
        foreach (var batch in batches)
        {
            if (batch.Length == 0)
                continue;
            using var scope = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            using var encoded = backbone.Encode(batch.Select(i => texts[i]).ToList(), pairs is null ? null : batch.Select(i => pairs[i]).ToList(), config.MaxLength, tokenizer);
            var hidden = backbone.HiddenStates(encoded);
            var backboneDone = clock.Elapsed;
            var (states, segments) = HiddenStateGather.Gather(hidden, encoded.AttentionMask, adapter.Layout.Channels, config.Pooling);
            var outputs = classifier.Forward(states, segments, batch.Length).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
            timings?.Add(backboneDone, clock.Elapsed - backboneDone);
            var decoded = Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1);
            for (var k = 0; k < batch.Length; k++)
                predictions[batch[k]] = decoded[k];
        }

        return predictions;
    }

    /// <summary>Head outputs (rows × outputs, row-major) to predictions: softmax and argmax, or the de-standardised value.</summary>
    internal static Prediction[] Decode(ReadOnlySpan<float> outputs, IReadOnlyList<string> labels, bool regression, double targetMean, double targetStd)
    {
        if (regression)
        {
            var values = new Prediction[outputs.Length];
            for (var n = 0; n < outputs.Length; n++)
            {
                var value = outputs[n] * targetStd + targetMean;
                values[n] = new Prediction(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), new Dictionary<string, double>(), value);
            }

            return values;
        }

        var k = labels.Count;
        var result = new Prediction[outputs.Length / k];
        var probabilities = new double[k];
        for (var n = 0; n < result.Length; n++)
        {
            var row = outputs.Slice(n * k, k);
            double max = double.NegativeInfinity, sum = 0;
            foreach (var v in row)
                max = Math.Max(max, v);
            for (var j = 0; j < k; j++)
                sum += probabilities[j] = Math.Exp(row[j] - max);
            var best = 0;
            var map = new Dictionary<string, double>(k, StringComparer.Ordinal);
            for (var j = 0; j < k; j++)
            {
                map[labels[j]] = probabilities[j] / sum;
                if (probabilities[j] > probabilities[best])
                    best = j;
            }

            result[n] = new Prediction(labels[best], map);
        }

        return result;
    }
}
