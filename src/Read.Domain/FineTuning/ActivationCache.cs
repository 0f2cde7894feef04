using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// First-token ([CLS]) hidden states of backbone layers 1..L for a list of examples, stored once on disk and reused
/// by every job on the same backbone and data. File layout (little-endian):
/// magic "READACT\0" (8 bytes), int32 version (1), int32 dtype (1 = fp16), int64 N, int32 L, int32 d,
/// then N·L·d values ordered [example][layer][feature]. Files are written to a temporary name and renamed.
/// </summary>
internal sealed class ActivationCache
{
    public const int FormatVersion = 1;
    private const int Fp16 = 1;
    private const int HeaderSize = 8 + 4 + 4 + 8 + 4 + 4;
    private const int PrecomputeBatchSize = 32;
    private static ReadOnlySpan<byte> Magic => "READACT\0"u8;

    private ActivationCache(int count, int layers, int hiddenSize, Half[] values)
    {
        Count = count;
        Layers = layers;
        HiddenSize = hiddenSize;
        Values = values;
    }

    public int Count { get; }

    public int Layers { get; }

    public int HiddenSize { get; }

    private Half[] Values { get; }

    /// <summary>The cached states as float32 (N, L, d).</summary>
    public Tensor ToTensor()
    {
        var floats = new float[Values.Length];
        for (var i = 0; i < floats.Length; i++)
            floats[i] = (float)Values[i];
        return torch.tensor(floats, [Count, Layers, HiddenSize], ScalarType.Float32);
    }

    /// <summary>
    /// Content address: cache format, backbone weights, tokenizer settings, max length, pooling, layer set, dtype
    /// and the exact inputs (labels excluded: they do not change the states).
    /// </summary>
    public static string Key(Backbone backbone, IReadOnlyList<LabeledExample> examples, int maxLength)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string? value)
        {
            if (value is null)
            {
                hash.AppendData([0xFF]);
                return;
            }

            var bytes = Encoding.UTF8.GetBytes(value);
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
            hash.AppendData(length);
            hash.AppendData(bytes);
        }

        Add($"read-activations v{FormatVersion} fp16 pooling=cls layers=1..{backbone.Config.NumHiddenLayers}");
        Add(backbone.WeightsHash);
        Add($"lower={backbone.LowerCase} max_length={maxLength} truncation=longest_first");
        Add(examples.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var example in examples)
        {
            Add(example.Text);
            Add(example.TextPair);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Loads the cache for these examples, or runs the backbone once (no_grad) and writes it.</summary>
    public static (ActivationCache Cache, bool Hit) GetOrCreate(
        Backbone backbone, IReadOnlyList<LabeledExample> examples, int maxLength, string directory, Action<double>? progress, CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, Key(backbone, examples, maxLength) + ".readact");
        var existing = TryLoad(path, examples.Count, backbone.Config.NumHiddenLayers, backbone.Config.HiddenSize);
        if (existing is not null)
        {
            progress?.Invoke(1.0);
            return (existing, true);
        }

        var cache = Compute(backbone, examples, maxLength, progress, cancellationToken);
        Directory.CreateDirectory(directory);
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = File.Create(temporary))
                cache.WriteTo(stream);
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }

        return (cache, false);
    }

    private static ActivationCache Compute(Backbone backbone, IReadOnlyList<LabeledExample> examples, int maxLength, Action<double>? progress, CancellationToken cancellationToken)
    {
        int layers = backbone.Config.NumHiddenLayers, d = backbone.Config.HiddenSize;
        var values = new Half[(long)examples.Count * layers * d];
        for (var start = 0; start < examples.Count; start += PrecomputeBatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = examples.Skip(start).Take(PrecomputeBatchSize).ToList();
            using var scope = NewDisposeScope();
            using var encoded = backbone.Encode(batch.Select(e => e.Text).ToList(), batch.Select(e => e.TextPair).ToList(), maxLength);
            var hidden = backbone.HiddenStates(encoded);
            var firstToken = stack(hidden.Skip(1).Select(h => h.select(1, 0)).ToArray(), 1); // (B, L, d)
            var halves = firstToken.to_type(ScalarType.Float16).contiguous().data<Half>().ToArray();
            halves.CopyTo(values, (long)start * layers * d);
            progress?.Invoke(Math.Min(1.0, (double)(start + batch.Count) / examples.Count));
        }

        return new ActivationCache(examples.Count, layers, d, values);
    }

    private static ActivationCache? TryLoad(string path, int count, int layers, int hiddenSize)
    {
        if (!File.Exists(path))
            return null;
        var bytes = File.ReadAllBytes(path);
        // A file that does not match what its name promises is treated as absent and rewritten.
        if (bytes.Length < HeaderSize || !bytes.AsSpan(0, 8).SequenceEqual(Magic))
            return null;
        var span = bytes.AsSpan();
        if (BinaryPrimitives.ReadInt32LittleEndian(span[8..]) != FormatVersion || BinaryPrimitives.ReadInt32LittleEndian(span[12..]) != Fp16
            || BinaryPrimitives.ReadInt64LittleEndian(span[16..]) != count || BinaryPrimitives.ReadInt32LittleEndian(span[24..]) != layers
            || BinaryPrimitives.ReadInt32LittleEndian(span[28..]) != hiddenSize)
            return null;
        var length = (long)count * layers * hiddenSize;
        if (bytes.LongLength != HeaderSize + length * 2)
            return null;
        var values = new Half[length];
        for (var i = 0; i < length; i++)
            values[i] = BinaryPrimitives.ReadHalfLittleEndian(span[(HeaderSize + (int)i * 2)..]);
        return new ActivationCache(count, layers, hiddenSize, values);
    }

    private void WriteTo(Stream stream)
    {
        var header = new byte[HeaderSize];
        Magic.CopyTo(header);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12), Fp16);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), Count);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(24), Layers);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(28), HiddenSize);
        stream.Write(header);
        var data = new byte[Values.Length * 2];
        for (var i = 0; i < Values.Length; i++)
            BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(i * 2), Values[i]);
        stream.Write(data);
    }
}
