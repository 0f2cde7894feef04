using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Llama;

/// <summary>
/// <see cref="LlamaModel"/> one step at a time: embed_tokens, then model.layers.N read from the checkpoint as each is
/// needed (only that layer's tensors' byte ranges), then model.norm with the last layer. The resident layer is held in
/// the compute dtype (<see cref="LlamaPrecision.Converted"/>), its weights rounded through the storage dtype on load so
/// that it computes exactly what the resident model (narrow weights widened per call) computes.
/// </summary>
internal sealed class LlamaLayerStream(string directory, LlamaConfig config, LlamaPrecision precision) : ILayerStream
{
    private readonly CheckpointWeights weights = CheckpointWeights.Open(directory);
    private readonly LlamaRotary rotary = new(config);
    private Embedding? embedding;
    private LlamaDecoderLayer? layer;
    private LlamaRmsNorm? norm;
    private int loaded = -1;

    public int Layers => config.NumHiddenLayers;

    public ScalarType ComputeDtype => precision.Compute;

    public long Load(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(step, Layers);
        Free();
        long bytes;
        if (step == 0)
        {
            // The table stays in the storage dtype (it is the largest tensor of a small decoder); only looked-up rows widen.
            embedding = nn.Embedding(config.VocabSize, config.HiddenSize, dtype: precision.Storage, device: precision.Device);
            bytes = LoadFrozen(embedding, "model.embed_tokens.", "embed_tokens.");
        }
        else
        {
            // Every layer has the same shapes: one module is refilled in place, not rebuilt (and randomly initialised) per step.
            layer ??= new LlamaDecoderLayer(config, precision.Converted);
            bytes = LoadFrozen(layer, $"model.layers.{step - 1}.", $"layers.{step - 1}.");
            if (step == Layers)
            {
                norm = new LlamaRmsNorm(config.HiddenSize, config.RmsNormEps, precision.Converted);
                bytes += LoadFrozen(norm, "model.norm.", "norm.");
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
            return LlamaModel.Embed(embedding!, batch.InputIds, precision.Compute);
        ArgumentNullException.ThrowIfNull(previous);
        using var scope = NewDisposeScope();
        var maskBias = LlamaModel.MaskBias(batch.AttentionMask, precision.Compute);
        var (cos, sin) = rotary.Angles(batch.InputIds.shape[1], precision.Compute, batch.InputIds.device);
        var h = layer!.call(previous, cos, sin, maskBias);
        return (step == Layers ? norm!.call(h) : h).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Free();
        layer?.Dispose();
        weights.Dispose();
    }

    private long LoadFrozen(nn.Module module, params string[] prefixes)
    {
        module.eval();
        foreach (var parameter in module.parameters())
            parameter.requires_grad = false;
        var bytes = ModuleWeights.Load(module, weights, prefixes);
        using var noGrad = no_grad();
        foreach (var parameter in module.parameters().Where(p => p.dtype != precision.Storage))
        {
            // Held wider than stored (the converted layer): round as the storage dtype would, so a fp32 checkpoint
            // registered in bf16 streams the same states as its resident bf16 model.
            using var rounded = parameter.to_type(precision.Storage);
            parameter.copy_(rounded);
        }

        return bytes;
    }

    /// <summary>Frees the embedding table and final norm; the layer module stays for the next layer's weights.</summary>
    private void Free()
    {
        embedding?.Dispose();
        norm?.Dispose();
        (embedding, norm, loaded) = (null, null, -1);
    }
}
