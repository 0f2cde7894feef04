using System.Collections;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using TorchSharp.PyBridge;

namespace Read.Domain.Backbones;

/// <summary>
/// Loads a Hugging Face BERT checkpoint directory: config.json; model.safetensors or pytorch_model.bin; vocab.txt or
/// tokenizer.json (WordPiece). RoBERTa-style checkpoints (BPE tokenizer, offset positions) are not supported.
/// </summary>
public static class HuggingFaceCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";
    public const string PyTorchWeightsFile = "pytorch_model.bin";
    public const string VocabularyFile = "vocab.txt";
    public const string TokenizerFile = "tokenizer.json";

    public static Backbone Load(string id, string directory)
    {
        var config = ReadConfig(directory);
        var weightsPath = FindWeights(directory)
            ?? throw new FileNotFoundException($"Backbone '{id}': {directory} has neither {WeightsFile} nor {PyTorchWeightsFile}.", Path.Combine(directory, WeightsFile));
        var bytes = File.ReadAllBytes(weightsPath);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var tensors = ReadTensors(weightsPath, bytes);

        var model = new BertModel(config);
        try
        {
            ModuleWeights.Load(model, tensors, weightsPath, "", "bert.");
            model.eval();
            foreach (var parameter in model.parameters())
                parameter.requires_grad = false;
            var (vocabulary, settings) = ReadTokenizer(directory);
            return new Backbone(id, config, model, vocabulary, settings, hash);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public static BertConfig ReadConfig(string directory)
    {
        var path = Path.Combine(directory, ConfigFile);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path} does not exist.", path);
        var config = JsonSerializer.Deserialize<BertConfig>(File.ReadAllText(path))
            ?? throw new InvalidDataException($"{path} is empty.");
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new InvalidDataException($"{path}: {string.Join(" ", errors)}");
        return config;
    }

    /// <summary>Parameters the encoder uses (embeddings and layers; pooler and pretraining heads excluded), from tensor shapes only.</summary>
    public static long CountParameters(string directory)
    {
        var weights = FindWeights(directory) ?? throw new FileNotFoundException($"{directory} has neither {WeightsFile} nor {PyTorchWeightsFile}.");
        var shapes = weights.EndsWith(".safetensors", StringComparison.Ordinal)
            ? SafeTensorsFile.ReadShapes(weights)
            : ReadTensors(weights, File.ReadAllBytes(weights)).ToDictionary(p => p.Key, p => p.Value.Shape, StringComparer.Ordinal);
        return shapes
            .Where(p => Strip(p.Key).StartsWith("embeddings.", StringComparison.Ordinal) || Strip(p.Key).StartsWith("encoder.", StringComparison.Ordinal))
            .Where(p => !p.Key.EndsWith("position_ids", StringComparison.Ordinal))
            .Sum(p => p.Value.Aggregate(1L, (a, b) => a * b));
    }

    /// <summary>model.safetensors if present, else pytorch_model.bin, else null.</summary>
    internal static string? FindWeights(string directory) =>
        new[] { WeightsFile, PyTorchWeightsFile }.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);

    /// <summary>Every tensor of a safetensors or PyTorch (zip pickle) state-dict file, widened to float32.</summary>
    internal static Dictionary<string, SafeTensor> ReadTensors(string path, byte[] bytes)
    {
        if (path.EndsWith(".safetensors", StringComparison.Ordinal))
            return SafeTensorsFile.Read(bytes);

        Hashtable state;
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            state = PyTorchUnpickler.UnpickleStateDict(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{path} is not a PyTorch state dict this loader can read: {e.Message}", e);
        }

        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in state)
        {
            if (entry.Key is not string name || entry.Value is not torch.Tensor tensor)
                continue;
            using (tensor)
            {
                if (tensor.dtype is torch.ScalarType.Float32 or torch.ScalarType.Float16 or torch.ScalarType.BFloat16 or torch.ScalarType.Float64)
                    tensors[name] = new SafeTensor(tensor.shape.ToArray(), ModuleWeights.ToArray(tensor));
            }
        }

        return tensors;
    }

    /// <summary>
    /// The WordPiece vocabulary (vocab.txt, or the vocabulary inside tokenizer.json) and the tokenizer settings the
    /// checkpoint declares.
    /// </summary>
    internal static (IReadOnlyList<string> Vocabulary, TokenizerSettings Settings) ReadTokenizer(string directory)
    {
        var vocabPath = Path.Combine(directory, VocabularyFile);
        var tokenizerPath = Path.Combine(directory, TokenizerFile);
        var configPath = Path.Combine(directory, "tokenizer_config.json");
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
            throw new FileNotFoundException($"{directory} has neither {VocabularyFile} nor {TokenizerFile}.", vocabPath);
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
