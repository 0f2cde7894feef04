namespace Read.Api.Adapters;

/// <summary>The adapter was deleted between the request's lookup and its artifact load: the request answers 404.</summary>
internal sealed class AdapterGoneException() : Exception("The adapter no longer exists.");
