using Read.Domain.Configuration;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using TorchSharp;

namespace Read.Domain.Adapters;

/// <summary>
/// The adapter zip: adapter_config.json (sorted keys), adapter_model.safetensors (side network and head only,
/// under <c>side.</c> and <c>head.</c>) and metrics.json.
/// </summary>
public static class AdapterArtifact
{
    public const string ConfigEntry = "adapter_config.json";
    public const string WeightsEntry = "adapter_model.safetensors";
    public const string MetricsEntry = "metrics.json";

    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static byte[] Write(AdapterConfig config, ReadClassifier model, object metrics)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(model);
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            // A fixed timestamp keeps the bytes of an artifact a function of its contents.
            void Add(string name, byte[] bytes)
            {
                var entry = zip.CreateEntry(name, CompressionLevel.Optimal);
                entry.LastWriteTime = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
                using var stream = entry.Open();
                stream.Write(bytes);
            }

            Add(ConfigEntry, SortedJson(JsonSerializer.SerializeToNode(config)));
            Add(WeightsEntry, SafeTensorsFile.Write(ModuleWeights.StateOf(model)));
            Add(MetricsEntry, SortedJson(JsonSerializer.SerializeToNode(metrics, metrics.GetType(), SnakeCase)));
        }

        return buffer.ToArray();
    }

    public static AdapterConfig ReadConfig(byte[] artifact)
    {
        using var zip = Open(artifact);
        return ReadConfig(zip);
    }

    /// <summary>Rebuilds the adapter; refuses a backbone other than the one it was trained on.</summary>
    public static LoadedAdapter Load(byte[] artifact, Backbone backbone)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        using var zip = Open(artifact);
        var config = ReadConfig(zip);
        if (!string.Equals(config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
            throw new InvalidDataException($"The adapter was trained on backbone '{config.BackboneId}' with weights {config.BackboneWeightsHash}, not on '{backbone.Id}' with weights {backbone.WeightsHash}.");
        if ((config.Architecture ?? BackboneArchitecture.Bert) != backbone.Architecture)
            throw new InvalidDataException($"The adapter was trained on a {config.Architecture ?? BackboneArchitecture.Bert} backbone, '{backbone.Id}' is {backbone.Architecture}.");
        if (!backbone.Poolings.Contains(config.Pooling))
            throw new InvalidDataException($"The adapter's pooling '{JsonEnum<Pooling>.Name(config.Pooling)}' does not apply to a {backbone.Architecture} backbone.");
        if (config.HiddenSize != backbone.Shape.HiddenSize)
            throw new InvalidDataException($"The adapter expects width {config.HiddenSize}, the backbone has {backbone.Shape.HiddenSize}.");
        if (config.Layers.Count == 0 || config.Layers.Any(l => l < 1 || l > backbone.Shape.NumHiddenLayers)
            || (config.BackboneLayers is { } layers && layers != backbone.Shape.NumHiddenLayers))
            throw new InvalidDataException($"The adapter's layers [{string.Join(", ", config.Layers)}] do not fit a backbone of {backbone.Shape.NumHiddenLayers} layers.");
        var weightsEntry = zip.GetEntry(WeightsEntry) ?? throw new InvalidDataException($"The adapter has no {WeightsEntry}.");
        byte[] bytes;
        using (var stream = weightsEntry.Open())
        using (var copy = new MemoryStream())
        {
            stream.CopyTo(copy);
            bytes = copy.ToArray();
        }

        var (classifier, layout) = Build(config, backbone.Shape.NumHiddenLayers);
        try
        {
            ModuleWeights.Load(classifier, SafeTensorsFile.Read(bytes), WeightsEntry, "");
            classifier.eval();
            foreach (var parameter in classifier.parameters())
                parameter.requires_grad = false;
            return new LoadedAdapter(config, classifier, layout);
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>The untrained module an adapter_config.json describes, and the layer layout it reads.</summary>
    internal static (ReadClassifier Classifier, LayerLayout Layout) Build(AdapterConfig config, int backboneLayers)
    {
        if (config.Method != "read" || config.Head is not (AdapterConfig.ClassificationHead or AdapterConfig.RegressionHead)
            || !Enum.IsDefined(config.Pooling))
            throw new InvalidDataException($"Unsupported adapter: method '{config.Method}', head '{config.Head}', pooling {config.Pooling}.");
        if (!config.IsRegression && config.LabelNames.Count < 1)
            throw new InvalidDataException("The adapter has no label_names.");
        try
        {
            var layout = LayerLayout.Create(config.Layers, backboneLayers, config.InitialState == InitialState.Embedding);
            var side = new ReadSideNetwork(
                new ReadSideNetworkConfig(config.HiddenSize, config.SideHiddenSize, config.Cell, config.Aggregation, config.EffectiveInputNorm,
                    ZeroInitOutput: true, config.InitialState),
                layout);
            return (new ReadClassifier(side, config.HiddenSize, config.IsRegression ? 1 : config.LabelNames.Count, config.Pooling), layout);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"Invalid adapter_config.json: {e.Message}", e);
        }
    }

    private static ZipArchive Open(byte[] artifact)
    {
        ArgumentNullException.ThrowIfNull(artifact);
        try
        {
            return new ZipArchive(new MemoryStream(artifact, writable: false), ZipArchiveMode.Read);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"The adapter artifact is not a zip file: {e.Message}", e);
        }
    }

    private static AdapterConfig ReadConfig(ZipArchive zip)
    {
        var entry = zip.GetEntry(ConfigEntry) ?? throw new InvalidDataException($"The adapter has no {ConfigEntry}.");
        using var stream = entry.Open();
        AdapterConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<AdapterConfig>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Invalid {ConfigEntry}: {e.Message}", e);
        }

        if (config is null || config.Layers is null || config.LabelNames is null || config.Tokenizer is null || config.BackboneWeightsHash is null)
            throw new InvalidDataException($"{ConfigEntry} lacks required fields.");
        if (config.FormatVersion != AdapterConfig.CurrentFormatVersion)
            throw new InvalidDataException($"Unsupported adapter format_version {config.FormatVersion}.");
        return config;
    }

    private static byte[] SortedJson(JsonNode? node) =>
        JsonSerializer.SerializeToUtf8Bytes(Sort(node), new JsonSerializerOptions { WriteIndented = true });

    private static JsonNode? Sort(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => KeyValuePair.Create(p.Key, Sort(p.Value?.DeepClone())))),
        JsonArray a => new JsonArray(a.Select(v => Sort(v?.DeepClone())).ToArray()),
        _ => node?.DeepClone(),
    };
}
