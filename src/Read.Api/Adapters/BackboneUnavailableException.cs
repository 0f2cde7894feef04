namespace Read.Api.Adapters;

/// <summary>
/// The adapter's backbone is not registered on this deployment (its checkpoint was removed from the configuration):
/// the request answers 503 <c>backbone_unavailable</c>, the code a job that cannot load its backbone fails with.
/// </summary>
internal sealed class BackboneUnavailableException(string adapterId, string backboneId, Exception? inner = null)
    : Exception($"Adapter '{adapterId}' runs on backbone '{backboneId}', which this deployment does not serve now; GET /v1/backbones lists those it does.", inner)
{
    public const string Code = Read.Domain.Jobs.JobErrorCodes.BackboneUnavailable;
}
