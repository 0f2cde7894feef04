using System.Text.Json;
using Read.Domain.FineTuning;

namespace Read.Api.FineTuning;

/// <summary>Body of POST /v1/fine-tuning/jobs.</summary>
internal sealed record CreateJobRequest(
    string? Backbone,
    string? Task,
    string? TrainingFile,
    string? ValidationFile,
    ReadHyperparameters? Hyperparameters,
    // JsonElement values, so a number or object answers invalid_metadata (not a generic invalid_request) naming the key.
    Dictionary<string, JsonElement>? Metadata,
    // A checkpoint id (GET /v1/fine-tuning/jobs/{id}/checkpoints) of an earlier job of the tenant on the same backbone.
    string? FromCheckpoint = null);
