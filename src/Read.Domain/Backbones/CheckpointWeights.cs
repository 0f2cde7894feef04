using System.Buffers.Binary;
using System.Collections;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>
/// The weight files of a Hugging Face checkpoint directory — <c>model.safetensors</c>, shards listed in
/// <c>model.safetensors.index.json</c>, or <c>pytorch_model.bin</c> — read one tensor at a time: only the headers are
/// held, and a tensor's bytes are read from disk when it is copied into its parameter, so loading a multi-GB checkpoint
/// holds the model's own copy plus the tensor in flight. F32, F16 and BF16 storage convert to the parameter's dtype.
/// </summary>
internal sealed class CheckpointWeights : IDisposable
{
    public const string SingleFile = "model.safetensors";
    public const string ShardIndexFile = "model.safetensors.index.json";
    public const string PyTorchFile = "pytorch_model.bin";

    private readonly Dictionary<string, Entry> entries;

    private CheckpointWeights(string description, IReadOnlyList<string> files, Dictionary<string, Entry> entries)
    {
        Description = description;
        Files = files;
        this.entries = entries;
    }

    /// <summary>Where the weights come from, for error messages.</summary>
    public string Description { get; }

    /// <summary>The weight files, in the order the hash covers them.</summary>
    public IReadOnlyList<string> Files { get; }

    public IEnumerable<string> Names => entries.Keys;

    /// <summary>Whether the directory has weights in a layout this reader knows.</summary>
    public static bool Exists(string directory) =>
        new[] { SingleFile, ShardIndexFile, PyTorchFile }.Any(f => File.Exists(Path.Combine(directory, f)));

    /// <summary>Opens the weights: the single safetensors file, else the shard index, else pytorch_model.bin.</summary>
    public static CheckpointWeights Open(string directory)
    {
        var single = Path.Combine(directory, SingleFile);
        if (File.Exists(single))
            return new CheckpointWeights(single, [single], ReadSafetensorsHeader(single));

        var index = Path.Combine(directory, ShardIndexFile);
        if (File.Exists(index))
            return OpenShards(directory, index);

        var pytorch = Path.Combine(directory, PyTorchFile);
        if (File.Exists(pytorch))
            return new CheckpointWeights(pytorch, [pytorch], ReadPyTorch(pytorch));

        throw new FileNotFoundException($"{directory} has no weights: none of {SingleFile}, {ShardIndexFile} (shards) or {PyTorchFile}.", single);
    }

    public bool Contains(string name) => entries.ContainsKey(name);

    public long[] Shape(string name) => entries[name].Shape;

    /// <summary>Storage dtype of a tensor (F32, F16, BF16, ...).</summary>
    public string StorageDtype(string name) => entries[name].Dtype;

    /// <summary>
    /// sha256 (lowercase hex) identifying the weights: of the file's bytes for a single file (as Read has always
    /// hashed model.safetensors), and for shards of the lines "name sha256" of every shard in index order.
    /// </summary>
    public string Hash()
    {
        if (Files.Count == 1)
            return HashFile(Files[0]);
        var lines = new StringBuilder();
        foreach (var file in Files)
            lines.Append(Path.GetFileName(file)).Append(' ').Append(HashFile(file)).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(lines.ToString())));
    }

    /// <summary>Bytes the tensor occupies in its file (what <see cref="CopyInto"/> reads).</summary>
    public long StorageBytes(string name)
    {
        var entry = entries[name];
        var width = entry.Dtype switch { "F32" => 4, "F16" or "BF16" => 2, _ => 8 };
        return entry.Shape.Aggregate(1L, (a, b) => a * b) * width;
    }

    /// <summary>
    /// Reads one tensor from disk into <paramref name="destination"/> (same shape; any floating dtype): only that tensor's
    /// byte range, so a layer-streamed forward reads one layer's weights at a time. Returns the bytes read from disk.
    /// </summary>
    public long CopyInto(string name, Tensor destination)
    {
        var entry = entries[name];
        if (!entry.Shape.SequenceEqual(destination.shape))
            throw new InvalidDataException($"{Description}: tensor '{name}' has shape [{string.Join(", ", entry.Shape)}], expected [{string.Join(", ", destination.shape)}].");
        using var noGrad = no_grad();
        if (entry.Loaded is { } loaded)
        {
            destination.copy_(loaded);
            return 0;
        }

        var width = entry.Dtype switch
        {
            "F32" => 4,
            "F16" or "BF16" => 2,
            _ => throw new InvalidDataException($"{Description}: tensor '{name}' has dtype {entry.Dtype}; only F32, F16 and BF16 weights load."),
        };

        // Chunk by chunk, the raw bytes viewed as a tensor of the storage dtype and converted by copy_ (libtorch's
        // vectorised casts) into the parameter's dtype: the memory in flight is one chunk, whatever the tensor's size.
        var count = entry.Shape.Aggregate(1L, (a, b) => a * b);
        var chunk = (int)Math.Min(count, ChunkElements);
        var raw = new byte[chunk * width];
        var storage = entry.Dtype switch { "F32" => ScalarType.Float32, "F16" => ScalarType.Float16, _ => ScalarType.BFloat16 };
        using var flat = destination.view(-1);
        using var source = empty(chunk, storage, device: CPU); // copy_ moves each chunk to the parameter's device
        using var stream = new FileStream(entry.File, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        stream.Position = entry.Begin;
        for (long start = 0; start < count; start += chunk)
        {
            var n = (int)Math.Min(chunk, count - start);
            stream.ReadExactly(raw, 0, n * width);
            source.bytes = raw.AsSpan(0, chunk * width); // a short last chunk leaves stale bytes past n, never copied
            using var part = n == chunk ? source.alias() : source.narrow(0, 0, n);
            using var target = flat.narrow(0, start, n);
            target.copy_(part);
        }

        return count * width;
    }

    private const int ChunkElements = 1 << 22;

    public void Dispose()
    {
        foreach (var entry in entries.Values)
            entry.Loaded?.Dispose();
    }

    private static CheckpointWeights OpenShards(string directory, string index)
    {
        JsonNode? map;
        try
        {
            map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"];
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{index} is not valid JSON: {e.Message}", e);
        }

        if (map is not JsonObject weightMap || weightMap.Count == 0)
            throw new InvalidDataException($"{index} has no weight_map.");
        var shardOf = weightMap.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>() ?? throw new InvalidDataException($"{index}: tensor '{p.Key}' names no shard."), StringComparer.Ordinal);
        var files = shardOf.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (var shard in files)
        {
            if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                throw new InvalidDataException($"{index}: shard name '{shard}' is not a file in the checkpoint directory.");
            var path = Path.Combine(directory, shard);
            if (!File.Exists(path))
                throw new FileNotFoundException($"{index} lists shard {shard}, which does not exist.", path);
            foreach (var (name, entry) in ReadSafetensorsHeader(path))
            {
                if (shardOf.TryGetValue(name, out var expected) && expected == shard)
                    entries[name] = entry;
            }
        }

        var missing = shardOf.Keys.Where(n => !entries.ContainsKey(n)).Take(3).ToList();
        if (missing.Count > 0)
            throw new InvalidDataException($"{index} maps tensor '{missing[0]}' to {shardOf[missing[0]]}, which does not contain it.");
        return new CheckpointWeights(index, files.Select(f => Path.Combine(directory, f)).ToList(), entries);
    }

    private static Dictionary<string, Entry> ReadSafetensorsHeader(string path) =>
        SafeTensorsFile.ReadHeader(path).ToDictionary(p => p.Key, p => new Entry(path, p.Value.Dtype, p.Value.Shape, p.Value.Begin, p.Value.End, null), StringComparer.Ordinal);

    // pytorch_model.bin is a zip of pickles that cannot be read piecewise; only small (BERT-sized) checkpoints use it.
    private static Dictionary<string, Entry> ReadPyTorch(string path)
    {
        Hashtable state;
        try
        {
            using var stream = File.OpenRead(path);
            state = PyTorchUnpickler.UnpickleStateDict(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{path} is not a PyTorch state dict this loader can read: {e.Message}", e);
        }

        var entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        foreach (DictionaryEntry item in state)
        {
            if (item.Key is not string name || item.Value is not Tensor tensor)
                continue;
            if (tensor.dtype is ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float64)
                entries[name] = new Entry(path, tensor.dtype.ToString(), tensor.shape.ToArray(), 0, 0, tensor);
            else
                tensor.Dispose();
        }

        return entries;
    }

    private static string HashFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private sealed record Entry(string File, string Dtype, long[] Shape, long Begin, long End, Tensor? Loaded);
}
