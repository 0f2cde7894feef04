using System.Text.Json;
using Read.Domain.Adapters;

namespace Read.Api.Adapters;

/// <summary>An adapter's metadata as the API shows it.</summary>
internal sealed record AdapterResponse(
    string Id, string Object, string Backbone, string BackboneWeightsHash, string FineTuningJob, JsonElement Config,
    JsonElement Metrics, long SizeBytes, string Sha256, DateTime CreatedAt)
{
    public static AdapterResponse From(AdapterRecord a) => new(
        a.Id, "adapter", a.BackboneId, a.BackboneWeightsHash, a.JobId,
        JsonSerializer.Deserialize<JsonElement>(a.ConfigJson), JsonSerializer.Deserialize<JsonElement>(a.MetricsJson),
        a.SizeBytes, a.Sha256, a.CreatedAt);
}
