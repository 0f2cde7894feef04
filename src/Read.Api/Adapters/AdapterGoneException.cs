namespace Read.Api.Adapters;

/// <summary>The adapter was deleted between the request's lookup and its artifact load: the request answers 404.</summary>
internal sealed class AdapterGoneException(string adapterId) : Exception($"Adapter '{adapterId}' no longer exists.")
{
    public string AdapterId { get; } = adapterId;
}
