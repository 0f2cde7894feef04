using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Bert;

/// <summary>
/// <see cref="BertModel"/> one step at a time: the embeddings, then encoder.layer.N read from the checkpoint as each is
/// needed (only that layer's tensors' byte ranges). The resident layer is held in the compute dtype
/// (<see cref="BertPrecision.Converted"/>), its weights rounded through the storage dtype on load so that it computes
/// exactly what the resident model (narrow weights widened per call) computes.
/// </summary>
internal sealed class BertLayerStream(string directory, BertConfig config, BertPrecision precision) : ILayerStream
{
    private readonly CheckpointWeights weights = CheckpointWeights.Open(directory);
    private BertEmbeddings? embeddings;
    private BertLayer? layer;
    private int loaded = -1;

    public int Layers => config.NumHiddenLayers;

    public ScalarType ComputeDtype => precision.Compute;

    public long Load(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(step, Layers);
        Free();
        // Every layer has the same shapes: one module is refilled in place, not rebuilt (and randomly initialised) per step.
        // On the backbone's device and in its precision, as the resident model would be (docs/decisions/012).
        // The embeddings keep the storage dtype (the word table is the largest tensor); only looked-up rows widen.
        nn.Module module = step == 0 ? embeddings = new BertEmbeddings(config, precision) : layer ??= new BertLayer(config, precision.Converted);
        module.eval();
        foreach (var parameter in module.parameters())
            parameter.requires_grad = false;
        var bytes = step == 0
            ? ModuleWeights.Load(module, weights, "embeddings.", "bert.embeddings.")
            : ModuleWeights.Load(module, weights, $"encoder.layer.{step - 1}.", $"bert.encoder.layer.{step - 1}.");
        using (no_grad())
        {
            foreach (var parameter in module.parameters().Where(p => p.dtype != precision.Storage))
            {
                // Held wider than stored (the converted layer): round as the storage dtype would.
                using var rounded = parameter.to_type(precision.Storage);
                parameter.copy_(rounded);
            }
        }

        loaded = step;
        return bytes;
    }

    public Tensor Run(int step, Tensor? previous, EncodedBatch batch)
    {
        if (step != loaded)
            throw new InvalidOperationException($"Step {step} is not loaded (step {loaded} is).");
        using var noGrad = no_grad();
        if (step == 0)
            return embeddings!.call(batch.InputIds, batch.TokenTypeIds);
        ArgumentNullException.ThrowIfNull(previous);
        using var maskBias = BertModel.MaskBias(batch.AttentionMask, precision.Compute);
        return layer!.call(previous, maskBias);
    }

    public void Dispose()
    {
        Free();
        layer?.Dispose();
        weights.Dispose();
    }

    /// <summary>Frees the embeddings; the layer module stays for the next layer's weights.</summary>
    private void Free()
    {
        embeddings?.Dispose();
        (embeddings, loaded) = (null, -1);
    }
}
