namespace Read.Domain.Backbones.Llama;

/// <summary>
/// A Hugging Face Llama-family checkpoint (llama, mistral, qwen2): config.json; model.safetensors or
/// model-0000N-of-0000M.safetensors shards with model.safetensors.index.json, stored as F32, F16 or BF16; the
/// tokenizer (tokenizer.json, or tokenizer.model) with tokenizer_config.json. lm_head is never loaded.
/// </summary>
public static class LlamaCheckpoint
{
    /// <param name="dtype">What the weights are kept in.</param>
    /// <param name="compute">What activations are computed in (<see cref="BackbonePrecision.ComputeDtype(BackboneDtype, ReadDevice)"/>).</param>
    internal static Backbone Load(string id, string directory, BackboneDtype dtype, ReadDevice device, BackboneDtype compute)
    {
        var config = ReadConfig(directory);
        using var weights = CheckpointWeights.Open(directory);
        var hash = weights.Hash();
        var precision = new LlamaPrecision(dtype.ToScalarType(), compute.ToScalarType(), device.Torch);
        var model = new LlamaModel(config, precision);
        LlamaTokenizer? tokenizer = null;
        try
        {
            ModuleWeights.Load(model, weights, "model.", "");
            tokenizer = LlamaTokenizer.Load(directory, config);
            return new Backbone(id, BackboneArchitecture.Llama, config.ModelType, model, tokenizer, hash,
                () => new LlamaLayerStream(directory, config, precision))
            {
                Device = device,
                StorageDtype = dtype,
                ComputeDtype = compute,
            };
        }
        catch
        {
            model.Dispose();
            tokenizer?.Dispose();
            throw;
        }
    }

    /// <summary>The backbone without its weights in memory: precompute streams them layer by layer.</summary>
    internal static Backbone LoadStreamed(string id, string directory, BackboneDtype dtype, ReadDevice device, BackboneDtype compute)
    {
        var config = ReadConfig(directory);
        var description = Describe(directory);
        string hash;
        using (var weights = CheckpointWeights.Open(directory))
            hash = weights.Hash();
        var tokenizer = LlamaTokenizer.Load(directory, config);
        var precision = new LlamaPrecision(dtype.ToScalarType(), compute.ToScalarType(), device.Torch);
        return new Backbone(id, BackboneArchitecture.Llama, config.ModelType, description.Shape, tokenizer, hash,
            () => new LlamaLayerStream(directory, config, precision), description.Parameters * dtype.Size())
        {
            Device = device,
            StorageDtype = dtype,
            ComputeDtype = compute,
        };
    }

    internal static CheckpointDescription Describe(string directory)
    {
        var config = ReadConfig(directory);
        using var weights = CheckpointWeights.Open(directory);
        var parameters = weights.Names
            .Where(n => !n.StartsWith("lm_head.", StringComparison.Ordinal) && !n.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal))
            .Sum(n => weights.Shape(n).Aggregate(1L, (a, b) => a * b));
        return new CheckpointDescription(BackboneArchitecture.Llama, config.ModelType,
            new BackboneShape(config.HiddenSize, config.NumHiddenLayers, config.MaxInputLength), parameters);
    }

    public static LlamaConfig ReadConfig(string directory) =>
        LlamaConfig.Parse(HuggingFaceCheckpoint.ReadConfigJson(directory), Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile));
}
