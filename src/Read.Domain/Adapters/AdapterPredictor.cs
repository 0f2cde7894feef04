using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Adapters;

/// <summary>The inference path: backbone forward (no_grad), side network and head, softmax.</summary>
public sealed class AdapterPredictor
{
    private const int BatchSize = 32;

    private AdapterPredictor()
    {
    }

    public static IReadOnlyList<Prediction> Predict(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(texts);
        if (!string.Equals(adapter.Config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"The adapter belongs to backbone weights {adapter.Config.BackboneWeightsHash}, not {backbone.WeightsHash}.");
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException("pairs must have one entry per text.", nameof(pairs));

        var predictions = new List<Prediction>(texts.Count);
        for (var start = 0; start < texts.Count; start += BatchSize)
        {
            var count = Math.Min(BatchSize, texts.Count - start);
            using var scope = NewDisposeScope();
            using var encoded = backbone.Encode(texts.Skip(start).Take(count).ToList(), pairs?.Skip(start).Take(count).ToList(), adapter.Config.MaxLength);
            var hidden = backbone.HiddenStates(encoded);
            var states = stack(adapter.Config.Layers.Select(l => hidden[l].select(1, 0)).ToArray(), 1); // (B, L, d)
            predictions.AddRange(Classify(adapter.Classifier, states, adapter.Config.LabelNames));
        }

        return predictions;
    }

    /// <summary>Softmax over the head's logits for first-token states (N, L, d) of the adapter's layers.</summary>
    internal static IReadOnlyList<Prediction> Classify(ReadClassifier classifier, Tensor states, IReadOnlyList<string> labels)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var probabilities = classifier.call(states).to_type(ScalarType.Float64).softmax(-1); // (N, labels)
        var values = probabilities.contiguous().data<double>().ToArray();
        var result = new List<Prediction>((int)states.shape[0]);
        for (var n = 0; n < states.shape[0]; n++)
        {
            var row = values.AsSpan(n * labels.Count, labels.Count);
            var best = 0;
            var map = new Dictionary<string, double>(labels.Count, StringComparer.Ordinal);
            for (var k = 0; k < labels.Count; k++)
            {
                map[labels[k]] = row[k];
                if (row[k] > row[best])
                    best = k;
            }

            result.Add(new Prediction(labels[best], map));
        }

        return result;
    }
}
