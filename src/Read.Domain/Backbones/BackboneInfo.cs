namespace Read.Domain.Backbones;

/// <summary>What <c>GET /v1/backbones</c> shows about one backbone.</summary>
public sealed record BackboneInfo(string Id, string Architecture, int Layers, int HiddenSize, long Parameters, int MaxPositions);
