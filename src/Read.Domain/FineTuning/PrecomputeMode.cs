using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.FineTuning;

/// <summary>
/// How the backbone runs for the activation cache (JSON: auto, resident, streamed): auto is resident when the backbone is
/// in memory, else layer-streamed (docs/decisions/011-layer-streamed-precompute.md).
/// </summary>
[JsonConverter(typeof(JsonEnumConverter<PrecomputeMode>))]
public enum PrecomputeMode
{
    Auto,
    Resident,
    Streamed,
}
