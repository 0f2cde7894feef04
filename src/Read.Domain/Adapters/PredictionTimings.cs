namespace Read.Domain.Adapters;

/// <summary>Where predict time goes: tokenization + backbone forward, and the side network + head (gather, recurrence, joiner, head).</summary>
public sealed class PredictionTimings
{
    public TimeSpan Backbone { get; private set; }
    public TimeSpan SideNetwork { get; private set; }

    internal void Add(TimeSpan backbone, TimeSpan sideNetwork)
    {
        Backbone += backbone;
        SideNetwork += sideNetwork;
    }
}
