using System.Text.Json.Serialization;
using Read.Domain.Configuration;
using Read.Domain.SideNetwork;

namespace Read.Domain.FineTuning;

/// <summary>
/// Hyperparameters of a READ fine-tuning job; every field is optional (snake_case JSON). Defaults suit a
/// MiniLM-sized backbone (d = 384, L = 6): all-token mean pooling, GRU, r = 64, 10 epochs, batch 32.
/// </summary>
public sealed record ReadHyperparameters
{
    /// <summary>Stands for "auto" in <see cref="Epochs"/>, <see cref="SideHiddenSize"/> and <see cref="LearningRate"/> (never a valid value).</summary>
    public const int Auto = -1;

    /// <summary>True when any field is "auto".</summary>
    [JsonIgnore]
    public bool HasAuto => Epochs == Auto || SideHiddenSize == Auto || LearningRate == Auto;

    /// <summary>
    /// Replaces "auto" by values chosen from the number of training examples n (docs/decisions/015-auto-hyperparameters.md):
    /// epochs 20 (n ≤ 500), 10 (≤ 2,000), 6 (≤ 10,000), else 4 — more passes for small sets, where an epoch is cheap and
    /// early stopping ends them when they stop helping; learning_rate 5e-3 below 1,000 examples (fewer steps must move the
    /// side network as far), else 2e-3; r 32 below 1,000 examples, 64 below 10,000, else 128 (capacity grows with data).
    /// </summary>
    public ReadHyperparameters ResolveAuto(int trainExamples) => !HasAuto ? this : this with
    {
        Epochs = Epochs != Auto ? Epochs : trainExamples <= 500 ? 20 : trainExamples <= 2_000 ? 10 : trainExamples <= 10_000 ? 6 : 4,
        LearningRate = LearningRate != Auto ? LearningRate : trainExamples < 1_000 ? 5e-3 : 2e-3,
        SideHiddenSize = SideHiddenSize != Auto ? SideHiddenSize : trainExamples < 1_000 ? 32 : trainExamples < 10_000 ? 64 : 128,
    };

    /// <summary>"auto" (or a number) in JSON; <see cref="Auto"/> here until <see cref="ResolveAuto"/> picks it from the dataset size.</summary>
    [JsonPropertyName("epochs")]
    [JsonConverter(typeof(AutoNumberConverter<int>))]
    public int Epochs { get; init; } = 10;

    [JsonPropertyName("batch_size")]
    public int BatchSize { get; init; } = 32;

    /// <summary>Peak learning rate of AdamW, reached after the warmup.</summary>
    [JsonPropertyName("learning_rate")]
    [JsonConverter(typeof(AutoNumberConverter<double>))]
    public double LearningRate { get; init; } = 2e-3;

    /// <summary>Decoupled weight decay on matrices; biases and norm weights are never decayed.</summary>
    [JsonPropertyName("weight_decay")]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Tokens per example after truncation, [CLS] and [SEP] included.</summary>
    [JsonPropertyName("max_length")]
    public int MaxLength { get; init; } = 128;

    /// <summary>Recurrent cell run across the layers: gru, rnn (Elman, tanh) or lstm.</summary>
    [JsonPropertyName("cell")]
    public RecurrentCell Cell { get; init; } = RecurrentCell.Gru;

    /// <summary>r: hidden size of the recurrent cell.</summary>
    [JsonPropertyName("r")]
    [JsonConverter(typeof(AutoNumberConverter<int>))]
    public int SideHiddenSize { get; init; } = 64;

    /// <summary>mean of h_1..h_K, or last (h_K).</summary>
    [JsonPropertyName("aggregation")]
    public LayerAggregation Aggregation { get; init; } = LayerAggregation.Mean;

    /// <summary>
    /// How the head pools the corrected final state: mean over the non-padding positions (what MiniLM-style sentence
    /// encoders were trained for), or cls (first token only: a cache and an epoch far cheaper, usually less accurate).
    /// </summary>
    [JsonPropertyName("pooling")]
    public Pooling Pooling { get; init; } = Pooling.Mean;

    /// <summary>Backbone layers (1-based, ascending) feeding the recurrence; null for all of 1..L.</summary>
    [JsonPropertyName("layers")]
    public IReadOnlyList<int>? Layers { get; init; }

    /// <summary>Trainable norm on every layer state before the cell: layernorm, rmsnorm or none.</summary>
    [JsonPropertyName("input_norm")]
    public InputNorm InputNorm { get; init; } = InputNorm.LayerNorm;

    /// <summary>Start the r→d output projection at zero, so the untrained adapter leaves the backbone's output unchanged.</summary>
    [JsonPropertyName("zero_init_output")]
    public bool ZeroInitOutput { get; init; } = true;

    /// <summary>zeros, or embedding: h_0 = W_0 · norm(φ_0) from the embedding output (adds a d×r projection).</summary>
    [JsonPropertyName("initial_state")]
    public InitialState InitialState { get; init; } = InitialState.Zeros;

    /// <summary>Share of the optimizer steps spent warming the learning rate up linearly; it then decays linearly to zero.</summary>
    [JsonPropertyName("warmup_ratio")]
    public double WarmupRatio { get; init; } = 0.1;

    /// <summary>Clip the global gradient norm to this value; 0 turns clipping off.</summary>
    [JsonPropertyName("max_grad_norm")]
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>
    /// Stop after this many epochs without a better validation metric and restore the best epoch's weights; 0 = off
    /// (train every epoch, keep the last weights). On by default: the validation curve often peaks well before the last
    /// epoch. It applies only when there is validation data (a validation file or the holdout split).
    /// </summary>
    [JsonPropertyName("early_stopping_patience")]
    public int EarlyStoppingPatience { get; init; } = 3;

    /// <summary>none, or balanced: weight each class's loss by N / (K · n_class) over the training set (classification only).</summary>
    [JsonPropertyName("class_weights")]
    public ClassWeighting ClassWeights { get; init; } = ClassWeighting.None;

    /// <summary>Storage type of the activation cache: fp16 or bf16.</summary>
    [JsonPropertyName("cache_dtype")]
    public CacheDtype CacheDtype { get; init; } = CacheDtype.Fp16;

    /// <summary>
    /// How the backbone runs for the activation cache: auto (resident when it fits the memory budget, else one layer at
    /// a time), resident, or streamed (docs/decisions/011-layer-streamed-precompute.md). The cache is the same either way.
    /// </summary>
    [JsonPropertyName("precompute")]
    public PrecomputeMode Precompute { get; init; } = PrecomputeMode.Auto;

    [JsonPropertyName("seed")]
    public int Seed { get; init; }

    /// <summary>Share of the training set held out for validation when no validation set is given.</summary>
    [JsonPropertyName("validation_split")]
    public double ValidationSplit { get; init; } = 0.1;

    /// <summary>Human-readable errors; empty when valid. max_length is checked against 512, layers only for their form.</summary>
    public IReadOnlyList<string> Validate() => Validate(512);

    /// <summary>Human-readable errors; empty when valid.</summary>
    /// <param name="maxPositions">The backbone's max_position_embeddings.</param>
    public IReadOnlyList<string> Validate(int maxPositions) => Validate(maxPositions, null);

    /// <summary>Human-readable errors; empty when valid.</summary>
    /// <param name="maxPositions">The backbone's max_position_embeddings.</param>
    /// <param name="numLayers">The backbone's depth L, to check <see cref="Layers"/> against; null checks only their form.</param>
    public IReadOnlyList<string> Validate(int maxPositions, int? numLayers) => Validate(maxPositions, numLayers, null);

    /// <summary>Human-readable errors; empty when valid. Each names its field first.</summary>
    /// <param name="maxPositions">The backbone's max_position_embeddings.</param>
    /// <param name="numLayers">The backbone's depth L, to check <see cref="Layers"/> against; null checks only their form.</param>
    /// <param name="hiddenSize">
    /// The backbone's width d; with <paramref name="numLayers"/> it bounds batch_size by what one activation-cache read can
    /// serve (<see cref="MaxBatchSize"/>). Null skips that check.
    /// </param>
    /// <param name="poolings">The poolings the backbone's architecture supports (all when null).</param>
    public IReadOnlyList<string> Validate(int maxPositions, int? numLayers, int? hiddenSize, IReadOnlyList<Pooling>? poolings = null)
    {
        var errors = new List<string>();
        if (Epochs != Auto && Epochs is < 1 or > 1000)
            errors.Add($"epochs must be between 1 and 1000 (got {Epochs}).");
        if (BatchSize is < 1 or > 4096)
            errors.Add($"batch_size must be between 1 and 4096 (got {BatchSize}).");
        // Bounds wide enough for any sensible run and tight enough that a typo fails here, not hours later as NaN.
        if (LearningRate != Auto && !(LearningRate > 0 && LearningRate <= 1))
            errors.Add($"learning_rate must be above 0 and at most 1 (got {LearningRate}).");
        if (!(WeightDecay >= 0 && WeightDecay <= 10))
            errors.Add($"weight_decay must be between 0 and 10 (got {WeightDecay}).");
        if (MaxLength < 8 || MaxLength > maxPositions)
            errors.Add($"max_length must be between 8 and {maxPositions} (got {MaxLength}).");
        if (SideHiddenSize != Auto && SideHiddenSize is < 1 or > 4096)
            errors.Add($"r must be between 1 and 4096 (got {SideHiddenSize}).");
        if (!(ValidationSplit >= 0 && ValidationSplit <= 0.5))
            errors.Add($"validation_split must be between 0 and 0.5 (got {ValidationSplit}).");
        // Names outside each enum never get here: the JSON converters refuse them (JsonEnumConverter).
        if (poolings is not null && !poolings.Contains(Pooling))
            errors.Add($"pooling must be one of {string.Join(", ", poolings.Select(JsonEnum<Pooling>.Name))} on this backbone " +
                       $"(got '{JsonEnum<Pooling>.Name(Pooling)}').");
        if (Layers is not null)
        {
            var limit = numLayers ?? int.MaxValue;
            var text = string.Join(", ", Layers);
            if (Layers.Count == 0)
                errors.Add("layers must name at least one layer (omit it for all).");
            else if (Layers.Any(l => l < 1 || l > limit))
                errors.Add(numLayers is null ? $"layers must be 1 or more (got [{text}])." : $"layers must be between 1 and {numLayers} (got [{text}]).");
            else if (Layers.Zip(Layers.Skip(1)).Any(p => p.First >= p.Second))
                errors.Add($"layers must be ascending and distinct (got [{text}]).");
        }

        if (!(WarmupRatio >= 0 && WarmupRatio < 1))
            errors.Add($"warmup_ratio must be at least 0 and below 1 (got {WarmupRatio}).");
        if (!(MaxGradNorm >= 0 && MaxGradNorm <= 1000))
            errors.Add($"max_grad_norm must be between 0 (off) and 1000 (got {MaxGradNorm}).");
        if (EarlyStoppingPatience is < 0 or > 1000)
            errors.Add($"early_stopping_patience must be between 0 (off) and 1000 (got {EarlyStoppingPatience}).");
        // Only once the rest is valid: the bound needs a valid layer set and max_length to compute.
        if (errors.Count == 0 && numLayers is { } depth && hiddenSize is { } width && MaxBatchSize(depth, width) is var largest && BatchSize > largest)
            errors.Add($"batch_size must be at most {largest} with max_length {MaxLength}, pooling {JsonEnum<Pooling>.Name(Pooling)} and this backbone's layers and width " +
                       $"(a batch read from the activation cache is limited to {ActivationCache.MaxBatchBytes} bytes; got {BatchSize}).");
        return errors;
    }

    /// <summary>
    /// The largest batch whose worst case (every example max_length positions with mean pooling, one with cls or last, times the
    /// cached layers, width and 2 bytes per fp16/bf16 number) fits one activation-cache read.
    /// </summary>
    public long MaxBatchSize(int numLayers, int hiddenSize)
    {
        long channels = LayerLayout.Create(Layers, numLayers, InitialState == InitialState.Embedding).Channels.Count;
        long positions = Pooling.IsSinglePosition() ? 1 : MaxLength;
        return ActivationCache.MaxBatchBytes / (positions * channels * hiddenSize * ActivationCache.BytesPerNumber);
    }
}
