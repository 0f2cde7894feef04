using Read.Domain.FineTuning;

namespace Read.Api.FineTuning;

/// <summary>Body of POST /v1/fine-tuning/jobs.</summary>
internal sealed record CreateJobRequest(
    string? Backbone,
    string? Task,
    string? TrainingFile,
    string? ValidationFile,
    ReadHyperparameters? Hyperparameters,
    Dictionary<string, string>? Metadata);
