using System.Text.Json;
using System.Text.Json.Nodes;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;

namespace Read.Domain.Backbones;

/// <summary>What a checkpoint directory holds, read from config.json and the weight headers only.</summary>
public sealed record CheckpointDescription(BackboneArchitecture Architecture, string ModelType, BackboneShape Shape, long Parameters);

/// <summary>
/// Loads a Hugging Face checkpoint directory as it comes from the Hub: config.json picks the architecture
/// (<c>model_type</c>), whose folder under Backbones/ reads the rest (weights via <see cref="CheckpointWeights"/>,
/// its tokenizer files).
/// </summary>
public static class HuggingFaceCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = CheckpointWeights.SingleFile;
    public const string ShardIndexFile = CheckpointWeights.ShardIndexFile;
    public const string PyTorchWeightsFile = CheckpointWeights.PyTorchFile;
    public const string VocabularyFile = "vocab.txt";
    public const string TokenizerFile = "tokenizer.json";
    public const string TokenizerConfigFile = "tokenizer_config.json";

    /// <summary>
    /// Loads the backbone onto <paramref name="device"/> (the CPU when null); <paramref name="dtype"/> is what its
    /// weights are kept in (float32 when null), <paramref name="compute"/> what the forward computes in (by default the
    /// device's choice, <see cref="BackbonePrecision.ComputeDtype(BackboneDtype, ReadDevice)"/>).
    /// </summary>
    public static Backbone Load(string id, string directory, BackboneDtype? dtype = null, ReadDevice? device = null, BackboneDtype? compute = null)
    {
        var config = ReadConfigJson(directory);
        device ??= ReadDevice.Cpu;
        var stored = dtype ?? BackboneDtype.Float32;
        return ArchitectureOf(config, directory) switch
        {
            BackboneArchitecture.Bert => BertCheckpoint.Load(id, directory, stored, device, compute ?? BackbonePrecision.ComputeDtype(stored, device)),
            BackboneArchitecture.Llama => LlamaCheckpoint.Load(id, directory, stored, device, compute ?? BackbonePrecision.ComputeDtype(stored, device)),
            var other => throw new NotSupportedException($"Architecture {other} has no loader."),
        };
    }

    /// <summary>
    /// The backbone without its weights in memory (config.json, safetensors headers, tokenizer, weights hash): every
    /// precompute on it is layer-streamed, and a whole forward is refused (<see cref="BackboneTooLargeException"/>).
    /// </summary>
    public static Backbone LoadStreamed(string id, string directory, BackboneDtype? dtype = null, ReadDevice? device = null, BackboneDtype? compute = null)
    {
        var config = ReadConfigJson(directory);
        device ??= ReadDevice.Cpu;
        var stored = dtype ?? BackboneDtype.Float32;
        return ArchitectureOf(config, directory) switch
        {
            BackboneArchitecture.Bert => BertCheckpoint.LoadStreamed(id, directory, stored, device, compute ?? BackbonePrecision.ComputeDtype(stored, device)),
            BackboneArchitecture.Llama => LlamaCheckpoint.LoadStreamed(id, directory, stored, device, compute ?? BackbonePrecision.ComputeDtype(stored, device)),
            var other => throw new NotSupportedException($"Architecture {other} has no loader."),
        };
    }

    /// <summary>Architecture, shape and parameter count, without loading weights (refuses what Load would refuse).</summary>
    public static CheckpointDescription Describe(string directory)
    {
        var config = ReadConfigJson(directory);
        return ArchitectureOf(config, directory) switch
        {
            BackboneArchitecture.Bert => BertCheckpoint.Describe(directory),
            BackboneArchitecture.Llama => LlamaCheckpoint.Describe(directory),
            var other => throw new NotSupportedException($"Architecture {other} has no loader."),
        };
    }

    /// <summary>Parameters the backbone uses (heads excluded), from tensor shapes only.</summary>
    public static long CountParameters(string directory) => Describe(directory).Parameters;

    internal static JsonObject ReadConfigJson(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist.", path);
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path} is not a JSON object.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private static BackboneArchitecture ArchitectureOf(JsonObject config, string directory)
    {
        var modelType = config["model_type"] is JsonValue v && v.TryGetValue<string>(out var text) ? text : null;
        return BackboneArchitectures.ForModelType(modelType)
            ?? throw new InvalidDataException(
                $"{Path.Combine(directory, ConfigFile)}: model_type '{modelType}' is not supported (supported: {string.Join(", ", BackboneArchitectures.SupportedModelTypes)}).");
    }
}
