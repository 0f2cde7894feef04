namespace Read.Domain.FineTuning;

/// <summary>The adapter artifact (zip) of a finished run, its metrics and its label names (index order).</summary>
public sealed record FineTuneResult(byte[] Artifact, FineTuneMetrics Metrics, IReadOnlyList<string> Labels);
