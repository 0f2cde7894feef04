namespace Read.Domain.Backbones.Llama;

/// <summary>
/// A Hugging Face Llama-family checkpoint (llama, mistral, qwen2): config.json; model.safetensors or
/// model-0000N-of-0000M.safetensors shards with model.safetensors.index.json, stored as F32, F16 or BF16; the
/// tokenizer (tokenizer.json, or tokenizer.model) with tokenizer_config.json. lm_head is never loaded.
/// </summary>
public static class LlamaCheckpoint
{
    /// <param name="dtype">What the weights are kept and computed in (decoders compute in their storage dtype).</param>
    internal static Backbone Load(string id, string directory, BackboneDtype dtype, ReadDevice device)
    {
        var config = ReadConfig(directory);
        using var weights = CheckpointWeights.Open(directory);
        var hash = weights.Hash();
        var model = new LlamaModel(config, dtype.ToScalarType(), device.Torch);
        LlamaTokenizer? tokenizer = null;
        try
        {
            ModuleWeights.Load(model, weights, "model.", "");
            tokenizer = LlamaTokenizer.Load(directory, config);
            return new Backbone(id, BackboneArchitecture.Llama, config.ModelType, model, tokenizer, hash,
                () => new LlamaLayerStream(directory, config, dtype.ToScalarType(), device.Torch))
            {
                Device = device,
                StorageDtype = dtype,
                ComputeDtype = dtype,
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
    internal static Backbone LoadStreamed(string id, string directory, BackboneDtype dtype, ReadDevice device)
    {
        var config = ReadConfig(directory);
        var description = Describe(directory);
        string hash;
        using (var weights = CheckpointWeights.Open(directory))
            hash = weights.Hash();
        var tokenizer = LlamaTokenizer.Load(directory, config);
        var scalar = dtype.ToScalarType();
        return new Backbone(id, BackboneArchitecture.Llama, config.ModelType, description.Shape, tokenizer, hash,
            () => new LlamaLayerStream(directory, config, scalar, device.Torch), description.Parameters * dtype.Size())
        {
            Device = device,
            StorageDtype = dtype,
            ComputeDtype = dtype,
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
