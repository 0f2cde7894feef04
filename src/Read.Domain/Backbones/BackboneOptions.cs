namespace Read.Domain.Backbones;

/// <summary>Which backbones a deployment can fine-tune and where their checkpoints live.</summary>
public sealed class BackboneOptions
{
    /// <summary>Root for generated and imported checkpoints (<c>{DataDirectory}/backbones/&lt;id&gt;</c>).</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Backbone id to Hugging Face checkpoint directory (config.json, model.safetensors or pytorch_model.bin, vocab.txt or tokenizer.json).</summary>
    public Dictionary<string, string> Checkpoints { get; set; } = new();

    /// <summary>Registers the built-in <c>tiny-bert</c> backbone, generated deterministically on first use.</summary>
    public bool GenerateTinyBackbone { get; set; } = true;

    /// <summary>
    /// Registers the bundled backbones (<c>all-minilm-l6-v2</c>, <c>arctic-xs</c>), imported from their ONNX packages
    /// into <c>{DataDirectory}/backbones/&lt;id&gt;</c> on first use.
    /// </summary>
    public bool ImportBundledBackbones { get; set; } = true;
}
