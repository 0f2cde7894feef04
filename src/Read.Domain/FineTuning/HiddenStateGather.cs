using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>Picks what a head needs out of a padded backbone forward, packed with no padding.</summary>
internal static class HiddenStateGather
{
    /// <summary>
    /// States (P, C, d) of <paramref name="layers"/> (0 = embeddings) — the first token of each example (cls), its last
    /// real token (last; batches are right-padded), or every real position, example by example in order (mean) — and
    /// Segments (P), each position's example index.
    /// </summary>
    public static (Tensor States, Tensor Segments) Gather(Tensor[] hidden, Tensor attentionMask, IReadOnlyList<int> layers, Pooling pooling)
    {
        using var scope = NewDisposeScope();
        var batch = attentionMask.shape[0];
        var width = attentionMask.shape[1];
        Tensor states, segments;
        if (pooling == Pooling.Cls)
        {
            states = stack(layers.Select(l => hidden[l].select(1, 0)).ToArray(), 1); // (B, C, d)
            segments = KeptScalars.Range(batch, ScalarType.Int64, attentionMask.device);
        }
        else if (pooling == Pooling.Last)
        {
            var last = attentionMask.sum(1).Minus(1).AtLeast(0); // (B): index of each row's last real token
            var rows = KeptScalars.Range(batch, ScalarType.Int64, attentionMask.device).Times(width).Plus(last); // in the flattened (B·S) positions
            states = stack(layers.Select(l => hidden[l].reshape(batch * width, -1).index_select(0, rows)).ToArray(), 1); // (B, C, d)
            segments = KeptScalars.Range(batch, ScalarType.Int64, attentionMask.device);
        }
        else
        {
            var valid = attentionMask.reshape(-1).nonzero().squeeze(1); // row-major: each example's positions, in order
            states = stack(layers.Select(l => hidden[l].reshape(batch * width, -1).index_select(0, valid)).ToArray(), 1); // (P, C, d)
            segments = valid.FloorDivide(width);
        }

        return (states.MoveToOuterDisposeScope(), segments.MoveToOuterDisposeScope());
    }
}
