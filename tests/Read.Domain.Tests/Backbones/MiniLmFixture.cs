using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert.Onnx;

namespace Read.Domain.Tests.Backbones;

/// <summary>all-MiniLM-L6-v2 imported once from its bundled ONNX export, with the ONNX bytes for ONNX Runtime.</summary>
public sealed class MiniLmFixture : IDisposable
{
    private readonly TempDirectory directory = new();

    public MiniLmFixture()
    {
        var bundled = BundledBackbones.Find(BundledBackbones.MiniLmId);
        (Onnx, Vocabulary) = BundledBackbones.ReadResources(bundled);
        CheckpointDirectory = directory.Sub(bundled.Id);
        Import = OnnxBertImporter.Import(Onnx, Vocabulary, CheckpointDirectory);
        Backbone = HuggingFaceCheckpoint.Load(bundled.Id, CheckpointDirectory);
    }

    public byte[] Onnx { get; }

    public byte[] Vocabulary { get; }

    public string CheckpointDirectory { get; }

    public OnnxImportResult Import { get; }

    public Backbone Backbone { get; }

    public void Dispose()
    {
        Backbone.Dispose();
        directory.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class MiniLmCollection : ICollectionFixture<MiniLmFixture>
{
    public const string Name = "MiniLM backbone";
}
