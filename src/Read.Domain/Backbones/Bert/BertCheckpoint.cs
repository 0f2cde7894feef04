using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Read.Domain.Backbones.Bert;

/// <summary>
/// A Hugging Face BERT checkpoint: config.json; model.safetensors (or shards) or pytorch_model.bin; vocab.txt or
/// tokenizer.json (WordPiece). RoBERTa-style checkpoints (BPE tokenizer, offset positions) are not supported.
/// </summary>
public static class BertCheckpoint
{
    /// <param name="dtype">What the weights are kept in.</param>
    /// <param name="compute">What activations are computed in (<see cref="BackbonePrecision.ComputeDtype"/>).</param>
    internal static Backbone Load(string id, string directory, BackboneDtype dtype, ReadDevice device, BackboneDtype compute)
    {
        var config = ReadConfig(directory);
        using var weights = CheckpointWeights.Open(directory);
        var hash = weights.Hash();
        var model = new BertModel(config, new BertPrecision(dtype.ToScalarType(), compute.ToScalarType(), device.Torch));
        try
        {
            ModuleWeights.Load(model, weights, "", "bert.");
            var (vocabulary, settings) = ReadTokenizer(directory);
            return new Backbone(id, BackboneArchitecture.Bert, "bert", model, new BertWordPieceTokenizer(vocabulary, settings), hash,
                LayerStreamOf(directory, config, model.Precision))
            {
                Device = device,
                StorageDtype = dtype,
                ComputeDtype = compute,
            };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The backbone without its weights in memory: precompute streams them layer by layer.</summary>
    internal static Backbone LoadStreamed(string id, string directory, BackboneDtype dtype, ReadDevice device, BackboneDtype compute)
    {
        var config = ReadConfig(directory);
        var description = Describe(directory);
        string hash;
        using (var weights = CheckpointWeights.Open(directory))
            hash = weights.Hash();
        var (vocabulary, settings) = ReadTokenizer(directory);
        return new Backbone(id, BackboneArchitecture.Bert, "bert", description.Shape, new BertWordPieceTokenizer(vocabulary, settings), hash,
            LayerStreamOf(directory, config, new BertPrecision(dtype.ToScalarType(), compute.ToScalarType(), device.Torch))!, description.Parameters * dtype.Size())
        {
            Device = device,
            StorageDtype = dtype,
            ComputeDtype = compute,
        };
    }

    // pytorch_model.bin is read whole by its loader, so only safetensors checkpoints stream.
    private static Func<ILayerStream>? LayerStreamOf(string directory, BertConfig config, BertPrecision precision) =>
        File.Exists(Path.Combine(directory, CheckpointWeights.PyTorchFile)) && !File.Exists(Path.Combine(directory, CheckpointWeights.SingleFile))
            && !File.Exists(Path.Combine(directory, CheckpointWeights.ShardIndexFile))
            ? null
            : () => new BertLayerStream(directory, config, precision);

    internal static CheckpointDescription Describe(string directory)
    {
        var config = ReadConfig(directory);
        using var weights = CheckpointWeights.Open(directory);
        var parameters = weights.Names
            .Where(n => Strip(n).StartsWith("embeddings.", StringComparison.Ordinal) || Strip(n).StartsWith("encoder.", StringComparison.Ordinal))
            .Where(n => !n.EndsWith("position_ids", StringComparison.Ordinal))
            .Sum(n => weights.Shape(n).Aggregate(1L, (a, b) => a * b));
        return new CheckpointDescription(BackboneArchitecture.Bert, "bert",
            new BackboneShape(config.HiddenSize, config.NumHiddenLayers, config.MaxPositionEmbeddings), parameters);
    }

    public static BertConfig ReadConfig(string directory)
    {
        var path = Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist.", path);
        var config = JsonSerializer.Deserialize<BertConfig>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path} is empty.");
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new InvalidDataException($"{path}: {string.Join(" ", errors)}");
        return config;
    }

    /// <summary>
    /// The WordPiece vocabulary (vocab.txt, or the vocabulary inside tokenizer.json) and the tokenizer settings the
    /// checkpoint declares.
    /// </summary>
    internal static (IReadOnlyList<string> Vocabulary, TokenizerSettings Settings) ReadTokenizer(string directory)
    {
        var vocabPath = Path.Combine(directory, HuggingFaceCheckpoint.VocabularyFile);
        var tokenizerPath = Path.Combine(directory, HuggingFaceCheckpoint.TokenizerFile);
        var configPath = Path.Combine(directory, HuggingFaceCheckpoint.TokenizerConfigFile);
        var tokenizerJson = File.Exists(tokenizerPath) ? JsonNode.Parse(File.ReadAllText(tokenizerPath)) : null;
        var tokenizerConfig = File.Exists(configPath) ? JsonNode.Parse(File.ReadAllText(configPath)) : null;
        var settings = TokenizerSettings.FromCheckpoint(tokenizerConfig, tokenizerJson);
        if (File.Exists(vocabPath))
        {
            var lines = File.ReadAllLines(vocabPath, Encoding.UTF8).ToList();
            while (lines.Count > 0 && lines[^1].Length == 0)
                lines.RemoveAt(lines.Count - 1);
            return (lines, settings);
        }

        if (tokenizerJson is null)
            throw new FileNotFoundException($"{directory} has neither {HuggingFaceCheckpoint.VocabularyFile} nor {HuggingFaceCheckpoint.TokenizerFile}.", vocabPath);
        var model = tokenizerJson["model"];
        var type = model?["type"]?.GetValue<string>();
        if (type != "WordPiece")
            throw new NotSupportedException($"{tokenizerPath}: tokenizer model '{type}' is not supported (only WordPiece, as BERT uses).");
        var vocabulary = model!["vocab"]?.AsObject() ?? throw new InvalidDataException($"{tokenizerPath} has no model.vocab.");
        var ordered = vocabulary.Select(p => (Token: p.Key, Id: p.Value!.GetValue<int>())).OrderBy(p => p.Id).ToList();
        for (var i = 0; i < ordered.Count; i++)
        {
            if (ordered[i].Id != i)
                throw new InvalidDataException($"{tokenizerPath}: vocabulary ids are not 0..{ordered.Count - 1} (token '{ordered[i].Token}' has id {ordered[i].Id}).");
        }

        return (ordered.Select(p => p.Token).ToList(), settings);
    }

    private static string Strip(string key) => key.StartsWith("bert.", StringComparison.Ordinal) ? key[5..] : key;
}
