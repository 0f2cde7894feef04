namespace Read.Domain.Backbones.Bert;

/// <summary>BERT's adaptable projections: the attention's query/key/value/output and the feed-forward pair.</summary>
public static class BertLoraTargets
{
    /// <summary>Layer modules live under this path (encoder.layer.{i}).</summary>
    public static string LayerPath(int layer) => $"encoder.layer.{layer}";

    public static LoraTargets Targets { get; } = new(
        [
            ("query", "attention.self.query"), ("key", "attention.self.key"), ("value", "attention.self.value"),
            ("attention.output.dense", "attention.output.dense"), ("intermediate.dense", "intermediate.dense"), ("output.dense", "output.dense"),
        ],
        ["query", "value"]);
}
