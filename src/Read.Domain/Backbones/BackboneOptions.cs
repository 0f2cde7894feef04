namespace Read.Domain.Backbones;

/// <summary>Which backbones a deployment can fine-tune and where their checkpoints live.</summary>
public sealed class BackboneOptions
{
    /// <summary>Root for generated checkpoints (<c>{DataDirectory}/backbones/tiny-bert</c>).</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Backbone id to Hugging Face checkpoint directory (config.json, model.safetensors, vocab.txt).</summary>
    public Dictionary<string, string> Checkpoints { get; set; } = new();

    /// <summary>Registers the built-in <c>tiny-bert</c> backbone, generated deterministically on first use.</summary>
    public bool GenerateTinyBackbone { get; set; } = true;
}
