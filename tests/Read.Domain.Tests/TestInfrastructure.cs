using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Read.Domain.Tests;

/// <summary>A temporary directory removed at the end of a test.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "read-tests-" + Guid.NewGuid().ToString("N"));

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>
/// An independent safetensors reader/writer for tests (F32 only), so the tests do not trust the production reader.
/// </summary>
internal static class TestSafeTensors
{
    public static Dictionary<string, (long[] Shape, float[] Data)> Read(string path) => Read(File.ReadAllBytes(path));

    public static Dictionary<string, (long[] Shape, float[] Data)> Read(byte[] bytes)
    {
        var headerLength = (int)BitConverter.ToInt64(bytes, 0);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerLength))!.AsObject();
        var result = new Dictionary<string, (long[], float[])>();
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__")
                continue;
            Assert.Equal("F32", node!["dtype"]!.GetValue<string>());
            var shape = node["shape"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            var begin = node["data_offsets"]![0]!.GetValue<long>();
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            Buffer.BlockCopy(bytes, 8 + headerLength + (int)begin, data, 0, data.Length * 4);
            result[name] = (shape, data);
        }

        return result;
    }

    public static void Write(string path, IReadOnlyDictionary<string, (long[] Shape, float[] Data)> tensors)
    {
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, (shape, data)) in tensors)
        {
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + data.Length * 4L),
            };
            offset += data.Length * 4L;
        }

        var headerBytes = Encoding.UTF8.GetBytes(header.ToJsonString());
        using var stream = File.Create(path);
        var length = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, headerBytes.Length);
        stream.Write(length);
        stream.Write(headerBytes);
        foreach (var (_, (_, data)) in tensors)
        {
            var raw = new byte[data.Length * 4];
            Buffer.BlockCopy(data, 0, raw, 0, raw.Length);
            stream.Write(raw);
        }
    }
}

/// <summary>One generated tiny backbone (4 layers, width 64) shared by the tests of a collection.</summary>
public sealed class TinyBackboneFixture : IDisposable
{
    private readonly TempDirectory directory = new();

    public TinyBackboneFixture()
    {
        CheckpointDirectory = directory.Sub("tiny");
        TinyBertCheckpoint.Write(CheckpointDirectory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        Backbone = HuggingFaceCheckpoint.Load("tiny-test", CheckpointDirectory);
    }

    public string CheckpointDirectory { get; }

    public Backbone Backbone { get; }

    public string NewCacheDirectory() => directory.Sub("cache-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        Backbone.Dispose();
        directory.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class TinyBackboneCollection : ICollectionFixture<TinyBackboneFixture>
{
    public const string Name = "tiny backbone";
}
