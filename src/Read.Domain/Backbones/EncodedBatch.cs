using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>A tokenized batch: (B, S) int64 tensors, padded to the longest example.</summary>
public sealed class EncodedBatch : IDisposable
{
    public EncodedBatch(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds)
    {
        InputIds = inputIds;
        AttentionMask = attentionMask;
        TokenTypeIds = tokenTypeIds;
    }

    public Tensor InputIds { get; }

    public Tensor AttentionMask { get; }

    public Tensor TokenTypeIds { get; }

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        TokenTypeIds.Dispose();
    }
}
