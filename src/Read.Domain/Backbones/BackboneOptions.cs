namespace Read.Domain.Backbones;

/// <summary>Which backbones a deployment can fine-tune and where their checkpoints live.</summary>
public sealed class BackboneOptions
{
    /// <summary>Root for generated and imported checkpoints (<c>{DataDirectory}/backbones/&lt;id&gt;</c>).</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Backbone id to Hugging Face checkpoint directory (config.json; model.safetensors, its shards or pytorch_model.bin; the tokenizer files).</summary>
    public Dictionary<string, string> Checkpoints { get; set; } = new();

    /// <summary>
    /// Backbone id to the dtype it computes in (float32, bfloat16 or float16; <c>Read__Backbones__Dtypes__&lt;id&gt;</c>).
    /// float32 when absent; half precision halves the weights' memory of a large decoder.
    /// </summary>
    public Dictionary<string, string> Dtypes { get; set; } = new();

    /// <summary>Registers the built-in <c>tiny-bert</c> backbone, generated deterministically on first use.</summary>
    public bool GenerateTinyBackbone { get; set; } = true;

    /// <summary>
    /// Registers the bundled backbones (<c>all-minilm-l6-v2</c>, <c>arctic-xs</c>), imported from their ONNX packages
    /// into <c>{DataDirectory}/backbones/&lt;id&gt;</c> on first use.
    /// </summary>
    public bool ImportBundledBackbones { get; set; } = true;
}
