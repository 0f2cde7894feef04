using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using TorchSharp;

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

    private readonly Lock placement = new();
    private bool disposed;

    /// <summary>
    /// The classifier on <paramref name="device"/> (the backbone's): loaded on the CPU, moved on first use. An adapter
    /// serves one device, as a worker runs one Read:Device.
    /// </summary>
    internal ReadClassifier ClassifierOn(ReadDevice device)
    {
        lock (placement)
        {
            // A use after dispose (a lease bug) says so, rather than failing on the module's emptied parameter list.
            ObjectDisposedException.ThrowIf(disposed, this);
            var first = Classifier.parameters().First();
            if (!device.Holds(first))
                Classifier.to(device.Torch);
            return Classifier;
        }
    }

    public void Dispose()
    {
        lock (placement)
        {
            disposed = true;
            Classifier.Dispose();
        }
    }
}
