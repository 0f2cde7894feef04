using Read.Domain.Backbones;
using Read.Domain.Datasets;
using static TorchSharp.torch;

namespace Read.Bench.Quality;

/// <summary>Mean-pooled (attention-masked) final hidden states of the frozen backbone: the linear probe's inputs.</summary>
internal static class FrozenFeatures
{
    public static Tensor MeanPooled(Backbone backbone, IReadOnlyList<LabeledExample> examples, int maxLength, int batchSize = 32)
    {
        var rows = new List<Tensor>();
        for (var start = 0; start < examples.Count; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = examples.Skip(start).Take(batchSize).ToList();
            using var encoded = backbone.Encode(batch.Select(e => e.Text).ToList(), batch.Select(e => e.TextPair).ToList(), maxLength);
            var states = backbone.HiddenStates(encoded);
            var last = states[^1]; // (B, S, d)
            var mask = encoded.AttentionMask.unsqueeze(-1).to_type(ScalarType.Float32); // (B, S, 1)
            var pooled = (last * mask).sum(1) / mask.sum(1).clamp_min(1); // (B, d)
            rows.Add(pooled.MoveToOuterDisposeScope());
        }
        var all = cat(rows, 0);
        foreach (var r in rows)
            r.Dispose();
        return all;
    }
}
