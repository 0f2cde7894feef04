using Read.Domain.Backbones.Bert;
using System.Globalization;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;

namespace Read.Research.Baselines;

/// <summary>
/// One method's run: the budget every method shares (tokenizer, max length, batch size, epochs, AdamW with linear warmup
/// and decay, seed) and the knobs of each method. A null learning rate means the method's literature default
/// (docs/decisions/007-baseline-learning-rates.md).
/// </summary>
public sealed record BaselineConfig
{
    /// <summary>The baselines run on BERT (BaselineTrainer refuses others), so its LoRA targets are the ones offered.</summary>
    public static IReadOnlyList<string> LoraTargetNames => BertLoraTargets.Targets.Names;

    public BaselineMethod Method { get; init; }

    public int Epochs { get; init; } = 10;

    public int BatchSize { get; init; } = 32;

    /// <summary>Tokens per example after truncation, [CLS] and [SEP] included.</summary>
    public int MaxLength { get; init; } = 128;

    /// <summary>Peak AdamW learning rate; null for <see cref="DefaultLearningRate"/> of the method.</summary>
    public double? LearningRate { get; init; }

    /// <summary>Decoupled weight decay on matrices (≥ 2-D); biases and norm weights are never decayed.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Share of the steps spent warming the learning rate up linearly; then linear decay to zero.</summary>
    public double WarmupRatio { get; init; } = 0.1;

    /// <summary>Global gradient-norm clip; 0 = off.</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Seeds libtorch's generator before any trainable tensor is initialised, and the epoch shuffles.</summary>
    public int Seed { get; init; }

    /// <summary>LoRA rank r.</summary>
    public int LoraRank { get; init; } = 8;

    /// <summary>LoRA α: the update is scaled by α / r.</summary>
    public double LoraAlpha { get; init; } = 8;

    /// <summary>Projections LoRA adapts in every layer, by their name inside the layer (see <see cref="LoraTargetNames"/>).</summary>
    public IReadOnlyList<string> LoraTargets { get; init; } = BertLoraTargets.Targets.Default;

    /// <summary>m: the bottleneck width of the adapters.</summary>
    public int AdapterSize { get; init; } = 64;

    /// <summary>READ: the recurrent cell (gru, rnn, lstm).</summary>
    public RecurrentCell Cell { get; init; } = RecurrentCell.Gru;

    /// <summary>READ: r, the cell's hidden size.</summary>
    public int SideHiddenSize { get; init; } = 64;

    /// <summary>READ: head pooling (mean or cls). The other methods always use the masked mean.</summary>
    public Pooling Pooling { get; init; } = Pooling.Mean;

    public double EffectiveLearningRate => LearningRate ?? DefaultLearningRate(Method);

    /// <summary>
    /// Peak learning rates from each method's paper for BERT-sized encoders: full fine-tuning 2e-5..5e-5 (BERT),
    /// LoRA 5e-4 (Hu et al., RoBERTa-base GLUE 4e-4..5e-4), BitFit 1e-3 (Ben Zaken et al. 1e-4..1e-3), Houlsby adapters
    /// 1e-3 (Houlsby et al. sweep 3e-5..3e-3; 1e-3..1e-4 common), a linear probe 1e-2 (convex, tolerates it), READ 2e-3
    /// (the service default).
    /// </summary>
    public static double DefaultLearningRate(BaselineMethod method) => method switch
    {
        BaselineMethod.Full => 3e-5,
        BaselineMethod.Lora => 5e-4,
        BaselineMethod.BitFit => 1e-3,
        BaselineMethod.Adapters => 1e-3,
        BaselineMethod.Probe => 1e-2,
        BaselineMethod.Read or BaselineMethod.ReadNoCache => 2e-3,
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };

    /// <summary>The command-line / JSON name: full, lora, bitfit, adapters, probe, read, read-nocache.</summary>
    public static string NameOf(BaselineMethod method) => method switch
    {
        BaselineMethod.ReadNoCache => "read-nocache",
        _ => method.ToString().ToLowerInvariant(),
    };

    public static BaselineMethod ParseMethod(string name) =>
        Enum.GetValues<BaselineMethod>().FirstOrDefault(m => NameOf(m) == name, (BaselineMethod)(-1)) is var method && Enum.IsDefined(method)
            ? method
            : throw new ArgumentException($"Unknown method '{name}' (one of {string.Join(", ", Enum.GetValues<BaselineMethod>().Select(NameOf))}).", nameof(name));

    /// <summary>The same budget as READ's hyperparameters (no validation holdout, no early stopping, fp16 cache).</summary>
    public ReadHyperparameters ToReadHyperparameters() => new()
    {
        Epochs = Epochs,
        BatchSize = BatchSize,
        LearningRate = EffectiveLearningRate,
        WeightDecay = WeightDecay,
        MaxLength = MaxLength,
        Cell = Cell,
        SideHiddenSize = SideHiddenSize,
        Pooling = Pooling,
        WarmupRatio = WarmupRatio,
        MaxGradNorm = MaxGradNorm,
        Seed = Seed,
    };

    /// <summary>Human-readable errors; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (Epochs is < 1 or > 1000)
            errors.Add($"epochs must be between 1 and 1000 (got {Epochs}).");
        if (BatchSize is < 1 or > 4096)
            errors.Add($"batch_size must be between 1 and 4096 (got {BatchSize}).");
        if (MaxLength is < 4 or > 4096)
            errors.Add($"max_length must be between 4 and 4096 (got {MaxLength}).");
        if (!(EffectiveLearningRate > 0) || double.IsInfinity(EffectiveLearningRate))
            errors.Add($"learning_rate must be positive (got {EffectiveLearningRate.ToString(CultureInfo.InvariantCulture)}).");
        if (LoraRank < 1)
            errors.Add($"lora rank must be at least 1 (got {LoraRank}).");
        if (!(LoraAlpha > 0))
            errors.Add($"lora alpha must be positive (got {LoraAlpha}).");
        if (LoraTargets.Count == 0 || LoraTargets.Any(t => !LoraTargetNames.Contains(t)))
            errors.Add($"lora targets must be some of {string.Join(", ", LoraTargetNames)} (got {string.Join(", ", LoraTargets)}).");
        if (AdapterSize < 1)
            errors.Add($"adapter size must be at least 1 (got {AdapterSize}).");
        return errors;
    }
}
