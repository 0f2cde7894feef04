using System.Text.Json.Serialization;

namespace Read.Domain.FineTuning;

/// <summary>Hyperparameters of a READ fine-tuning job; every field is optional (snake_case JSON).</summary>
public sealed record ReadHyperparameters
{
    public static readonly IReadOnlyList<string> Cells = ["gru", "rnn", "lstm"];
    public static readonly IReadOnlyList<string> Aggregations = ["mean", "last"];

    [JsonPropertyName("epochs")]
    public int Epochs { get; init; } = 3;

    [JsonPropertyName("batch_size")]
    public int BatchSize { get; init; } = 16;

    [JsonPropertyName("learning_rate")]
    public double LearningRate { get; init; } = 1e-3;

    [JsonPropertyName("weight_decay")]
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Tokens per example after truncation, [CLS] and [SEP] included.</summary>
    [JsonPropertyName("max_length")]
    public int MaxLength { get; init; } = 128;

    /// <summary>Recurrent cell run across the layers: gru, rnn (Elman, tanh) or lstm.</summary>
    [JsonPropertyName("cell")]
    public string Cell { get; init; } = "gru";

    /// <summary>r: hidden size of the recurrent cell.</summary>
    [JsonPropertyName("r")]
    public int SideHiddenSize { get; init; } = 64;

    /// <summary>mean of h_1..h_L, or last (h_L).</summary>
    [JsonPropertyName("aggregation")]
    public string Aggregation { get; init; } = "mean";

    [JsonPropertyName("seed")]
    public int Seed { get; init; }

    /// <summary>Share of the training set held out for validation when no validation set is given.</summary>
    [JsonPropertyName("validation_split")]
    public double ValidationSplit { get; init; } = 0.1;

    /// <summary>Human-readable errors; empty when valid. max_length is checked against 512.</summary>
    public IReadOnlyList<string> Validate() => Validate(512);

    /// <summary>Human-readable errors; empty when valid.</summary>
    /// <param name="maxPositions">The backbone's max_position_embeddings.</param>
    public IReadOnlyList<string> Validate(int maxPositions)
    {
        var errors = new List<string>();
        if (Epochs is < 1 or > 1000)
            errors.Add($"epochs must be between 1 and 1000 (got {Epochs}).");
        if (BatchSize is < 1 or > 4096)
            errors.Add($"batch_size must be between 1 and 4096 (got {BatchSize}).");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate))
            errors.Add($"learning_rate must be a positive number (got {LearningRate}).");
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            errors.Add($"weight_decay must be zero or positive (got {WeightDecay}).");
        if (MaxLength < 8 || MaxLength > maxPositions)
            errors.Add($"max_length must be between 8 and {maxPositions} (got {MaxLength}).");
        if (!Cells.Contains(Cell))
            errors.Add($"cell must be one of {string.Join(", ", Cells)} (got '{Cell}').");
        if (SideHiddenSize is < 1 or > 4096)
            errors.Add($"r must be between 1 and 4096 (got {SideHiddenSize}).");
        if (!Aggregations.Contains(Aggregation))
            errors.Add($"aggregation must be one of {string.Join(", ", Aggregations)} (got '{Aggregation}').");
        if (!(ValidationSplit >= 0 && ValidationSplit <= 0.5))
            errors.Add($"validation_split must be between 0 and 0.5 (got {ValidationSplit}).");
        return errors;
    }
}
