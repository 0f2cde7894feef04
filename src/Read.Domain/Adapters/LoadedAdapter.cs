using Read.Domain.SideNetwork;

namespace Read.Domain.Adapters;

/// <summary>An adapter ready to run: its config and its side network + head in eval mode.</summary>
public sealed class LoadedAdapter : IDisposable
{
    internal LoadedAdapter(AdapterConfig config, ReadClassifier classifier)
    {
        Config = config;
        Classifier = classifier;
    }

    public AdapterConfig Config { get; }

    internal ReadClassifier Classifier { get; }

    public void Dispose() => Classifier.Dispose();
}
