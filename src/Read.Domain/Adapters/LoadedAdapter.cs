using Read.Domain.SideNetwork;

namespace Read.Domain.Adapters;

/// <summary>An adapter ready to run: its config and its side network + head in eval mode.</summary>
public sealed class LoadedAdapter : IDisposable
{
    internal LoadedAdapter(AdapterConfig config, ReadClassifier classifier, LayerLayout layout)
    {
        Config = config;
        Classifier = classifier;
        Layout = layout;
    }

    public AdapterConfig Config { get; }

    /// <summary>Which backbone layers the side network reads, and what each feeds.</summary>
    public LayerLayout Layout { get; }

    internal ReadClassifier Classifier { get; }

    public void Dispose() => Classifier.Dispose();
}
