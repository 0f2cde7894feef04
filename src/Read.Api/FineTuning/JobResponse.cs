using System.Text.Json;
using Read.Domain.Configuration;
using Read.Domain.Jobs;

namespace Read.Api.FineTuning;

internal sealed record JobError(string Code, string Message);

/// <summary>
/// A fine-tuning job as the API shows it. hyperparameters holds the resolved numbers once "auto" values are picked (as
/// OpenAI's job object does); requested_hyperparameters, present only then, is the request with its "auto".
/// </summary>
internal sealed record JobResponse(
    string Id, string Object, string Backbone, string Task, string TrainingFile, string? ValidationFile, string Status, string? Stage,
    double Progress, JsonElement Hyperparameters, JsonElement? Metrics, JobError? Error, string? AdapterId, bool? CacheHit,
    int Attempts, JsonElement? Metadata, DateTime CreatedAt, DateTime? StartedAt, DateTime? FinishedAt,
    string? FromCheckpoint = null, DateTime? EstimatedFinish = null, JsonElement? RequestedHyperparameters = null)
{
    public static JobResponse From(FineTuneJob j) => new(
        j.Id, "fine_tuning.job", j.BackboneId, j.Task, j.TrainingFileId, j.ValidationFileId, j.Status, j.Stage, j.Progress,
        JsonSerializer.Deserialize<JsonElement>(j.HyperparametersJson),
        j.MetricsJson is null ? null : JsonSerializer.Deserialize<JsonElement>(j.MetricsJson),
        j.ErrorCode is null ? null : new JobError(j.ErrorCode, j.ErrorMessage ?? ""),
        j.AdapterId, j.CacheHit, j.Attempts,
        j.MetadataJson is null ? null : JsonSerializer.Deserialize<JsonElement>(j.MetadataJson),
        j.CreatedAt, j.StartedAt, j.FinishedAt, j.FromCheckpointId, j.Status == JobStatus.Running ? j.EstimatedFinishAt : null,
        j.RequestedHyperparametersJson is null ? null : JsonSerializer.Deserialize<JsonElement>(j.RequestedHyperparametersJson));
}

internal sealed record JobEventResponse(long Id, string Object, DateTime CreatedAt, string Level, string Message, JsonElement? Data)
{
    public static JobEventResponse From(JobEvent e) => new(e.Id, "fine_tuning.job.event", e.CreatedAt, e.Level, e.Message,
        e.DataJson is null ? null : JsonSerializer.Deserialize<JsonElement>(e.DataJson, JsonDefaults.SnakeCase));
}

/// <summary>A job checkpoint as the API lists it (the training state itself is not downloadable).</summary>
internal sealed record CheckpointResponse(string Id, string Object, string FineTuningJobId, int Epoch, JsonElement Metrics, bool IsBest, DateTime CreatedAt)
{
    public static CheckpointResponse From(JobCheckpoint c) => new(
        c.Id, "fine_tuning.job.checkpoint", c.JobId, c.Epoch, JsonSerializer.Deserialize<JsonElement>(c.MetricsJson), c.IsBest, c.CreatedAt);
}
