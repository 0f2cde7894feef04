using System.Text.Json;
using Read.Domain.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// The state of a READ run at the end of an epoch, enough to continue it exactly: side network and head weights, the
/// best epoch's weights (early stopping), AdamW's moments and step counts. The learning-rate schedule and the shuffle
/// order are not stored: both are functions of (seed, steps done), so a resume replays them. <see cref="State"/> is
/// self-contained; <see cref="Read"/> parses it back.
/// </summary>
public sealed record TrainingCheckpoint(int Epoch, int BestEpoch, bool Stopped, EpochMetrics Metrics, byte[] State)
{
    private const string Magic = "READCKPT";
    // 2: the optimizer state is AdamWSchedule's own (moments and step counts per parameter), no longer TorchSharp's
    // AdamW state dict. A version-1 checkpoint is refused as unreadable and the run starts over on its cache.
    private const int FormatVersion = 2;

    /// <summary>Epoch, best epoch and metrics from the header of <paramref name="state"/>.</summary>
    public static TrainingCheckpoint Read(byte[] state)
    {
        ArgumentNullException.ThrowIfNull(state);
        using var reader = new BinaryReader(new MemoryStream(state));
        var header = ReadHeader(reader);
        return new TrainingCheckpoint(header.Epoch, header.BestEpoch, header.Stopped, header.Metrics, state);
    }

    internal sealed record Header(
        int Epoch, int Step, int BestEpoch, bool Stopped, double LastLoss, EvaluationMetrics? Best, EpochMetrics Metrics, string Fingerprint);

    internal static byte[] Write(Header header, nn.Module model, IReadOnlyDictionary<string, Tensor>? bestWeights, Action<BinaryWriter> writeOptimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(Magic);
            writer.Write(FormatVersion);
            writer.Write(JsonSerializer.Serialize(header, JsonDefaults.SnakeCase));
            WriteWeights(writer, model.state_dict());
            writer.Write(bestWeights is not null);
            if (bestWeights is not null)
                WriteWeights(writer, bestWeights);
            writeOptimizer(writer);
        }

        return stream.ToArray();
    }

    internal static Header ReadHeader(BinaryReader reader)
    {
        if (reader.ReadString() != Magic)
            throw new InvalidDataException("Not a READ training checkpoint.");
        var version = reader.ReadInt32();
        if (version != FormatVersion)
            throw new InvalidDataException($"Training checkpoint format {version} is not supported (expected {FormatVersion}).");
        return JsonSerializer.Deserialize<Header>(reader.ReadString(), JsonDefaults.SnakeCase)
            ?? throw new InvalidDataException("The training checkpoint has no header.");
    }

    /// <summary>Name, shape and float32 values of each tensor, in the model's key order.</summary>
    internal static void WriteWeights(BinaryWriter writer, IEnumerable<KeyValuePair<string, Tensor>> weights)
    {
        var list = weights.ToList();
        writer.Write(list.Count);
        foreach (var (name, tensor) in list)
        {
            writer.Write(name);
            writer.Write(tensor.dim());
            foreach (var size in tensor.shape)
                writer.Write(size);
            using var values = tensor.detach().to_type(ScalarType.Float32).cpu().contiguous();
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.data<float>().ToArray().AsSpan()));
        }
    }

    /// <summary>
    /// Reads what <see cref="WriteWeights"/> wrote, as CPU tensors (named, not the default device): <see cref="Load"/> and
    /// the trainer's restore copy them onto the model's device (Read:Device).
    /// </summary>
    internal static Dictionary<string, Tensor> ReadWeights(BinaryReader reader)
    {
        var count = reader.ReadInt32();
        var result = new Dictionary<string, Tensor>(count, StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var name = reader.ReadString();
            var shape = new long[reader.ReadInt64()];
            for (var d = 0; d < shape.Length; d++)
                shape[d] = reader.ReadInt64();
            var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
            reader.BaseStream.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
            result[name] = tensor(values, device: CPU).reshape(shape);
        }

        return result;
    }

    /// <summary>Copies <paramref name="weights"/> into <paramref name="model"/>; a missing tensor or a shape mismatch throws.</summary>
    internal static void Load(nn.Module model, IReadOnlyDictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.state_dict())
        {
            if (!weights.TryGetValue(name, out var value))
                throw new InvalidDataException($"The checkpoint has no tensor '{name}'.");
            if (!value.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException(
                    $"The checkpoint's '{name}' has shape [{string.Join(", ", value.shape)}], the model's is [{string.Join(", ", parameter.shape)}].");
            parameter.copy_(value);
        }
    }
}
