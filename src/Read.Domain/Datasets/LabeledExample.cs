namespace Read.Domain.Datasets;

/// <summary>One line of a dataset file: the input text, an optional second text for pair tasks, and its label.</summary>
public sealed record LabeledExample(string Text, string? TextPair, string Label);
