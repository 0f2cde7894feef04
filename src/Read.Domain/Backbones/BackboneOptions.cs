namespace Read.Domain.Backbones;

/// <summary>Which backbones a deployment can fine-tune and where their checkpoints live.</summary>
public sealed class BackboneOptions
{
    /// <summary>Root for generated and imported checkpoints (<c>{DataDirectory}/backbones/&lt;id&gt;</c>).</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Backbone id to Hugging Face checkpoint directory (config.json; model.safetensors, its shards or pytorch_model.bin; the tokenizer files).</summary>
    public Dictionary<string, string> Checkpoints { get; set; } = new();

    /// <summary>
    /// Backbone id to the dtype its frozen weights are kept in (float32, bfloat16 or float16;
    /// <c>Read__Backbones__Dtypes__&lt;id&gt;</c>); what it computes in follows from it and the device
    /// (<see cref="BackbonePrecision.ComputeDtype(BackboneDtype, ReadDevice, bool)"/>). Absent: float32 on the CPU,
    /// bfloat16 on CUDA. Half precision halves the weights' memory.
    /// </summary>
    public Dictionary<string, string> Dtypes { get; set; } = new();

    /// <summary>
    /// Whether bfloat16-stored backbones compute in bfloat16 on the CPU (<c>Read__Backbones__CpuBf16Compute</c>). Unset:
    /// when the CPU has native bf16 instructions (<see cref="BackbonePrecision.CpuHasNativeBf16"/>); false keeps float32
    /// compute (the weights still stay bf16); true forces bf16 compute even where it is slow. No effect on CUDA.
    /// </summary>
    public bool? CpuBf16Compute { get; set; }

    /// <summary>Registers the built-in <c>tiny-bert</c> backbone, generated deterministically on first use.</summary>
    public bool GenerateTinyBackbone { get; set; } = true;

    /// <summary>
    /// Registers the bundled backbones (<c>all-minilm-l6-v2</c>, <c>arctic-xs</c>), imported from their ONNX packages
    /// into <c>{DataDirectory}/backbones/&lt;id&gt;</c> on first use.
    /// </summary>
    public bool ImportBundledBackbones { get; set; } = true;
}
