using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>A tokenized batch: (B, S) int64 tensors, right-padded to the longest example.</summary>
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

    /// <summary>Segment ids (BERT's token types); all zeros for architectures that have none.</summary>
    public Tensor TokenTypeIds { get; }

    /// <summary>Right-pads rows of (ids, token types) with <paramref name="padId"/>; the mask marks real tokens.</summary>
    public static EncodedBatch FromRows(IReadOnlyList<(int[] Ids, int[] Types)> rows, int padId)
    {
        var width = rows.Count == 0 ? 0 : rows.Max(r => r.Ids.Length);
        var inputIds = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        var tokenTypes = new long[rows.Count * width];
        Array.Fill(inputIds, padId);
        for (var r = 0; r < rows.Count; r++)
        {
            for (var t = 0; t < rows[r].Ids.Length; t++)
            {
                inputIds[r * width + t] = rows[r].Ids[t];
                mask[r * width + t] = 1;
                tokenTypes[r * width + t] = rows[r].Types[t];
            }
        }

        long[] shape = [rows.Count, width];
        // Built on the CPU from managed arrays; Backbone.Encode moves them to the backbone's device.
        return new EncodedBatch(torch.tensor(inputIds, shape, device: CPU), torch.tensor(mask, shape, device: CPU), torch.tensor(tokenTypes, shape, device: CPU));
    }

    /// <summary>This batch on <paramref name="device"/>: itself when already there, else a copy (this one disposed).</summary>
    public EncodedBatch To(Device device)
    {
        if (InputIds.device_type == device.type && (device.type != DeviceType.CUDA || InputIds.device_index == device.index))
            return this;
        var moved = new EncodedBatch(InputIds.to(device), AttentionMask.to(device), TokenTypeIds.to(device));
        Dispose();
        return moved;
    }

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        TokenTypeIds.Dispose();
    }
}
