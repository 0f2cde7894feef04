using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using TorchSharp;

namespace Read.Domain.Backbones;

/// <summary>Loads a Hugging Face BERT checkpoint directory: config.json, model.safetensors, vocab.txt.</summary>
public static class HuggingFaceCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";
    public const string VocabularyFile = "vocab.txt";

    public static Backbone Load(string id, string directory)
    {
        var config = ReadConfig(directory);
        var weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException($"Backbone '{id}': {weightsPath} does not exist.", weightsPath);
        var bytes = File.ReadAllBytes(weightsPath);
        var hash = Convert.ToHexStringLower(SHA256.HashData(bytes));
        var tensors = SafeTensorsFile.Read(bytes);

        var model = new BertModel(config);
        try
        {
            ModuleWeights.Load(model, tensors, weightsPath, "", "bert.");
            model.eval();
            foreach (var parameter in model.parameters())
                parameter.requires_grad = false;
            var lowerCase = ReadLowerCase(directory);
            var tokenizer = BertTokenizer.Create(Path.Combine(directory, VocabularyFile), new BertOptions { LowerCaseBeforeTokenization = lowerCase });
            return new Backbone(id, config, model, tokenizer, hash, lowerCase);
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
    public static long CountParameters(string directory) =>
        SafeTensorsFile.ReadShapes(Path.Combine(directory, WeightsFile))
            .Where(p => Strip(p.Key).StartsWith("embeddings.", StringComparison.Ordinal) || Strip(p.Key).StartsWith("encoder.", StringComparison.Ordinal))
            .Where(p => !p.Key.EndsWith("position_ids", StringComparison.Ordinal))
            .Sum(p => p.Value.Aggregate(1L, (a, b) => a * b));

    private static string Strip(string key) => key.StartsWith("bert.", StringComparison.Ordinal) ? key[5..] : key;

    private static bool ReadLowerCase(string directory)
    {
        var path = Path.Combine(directory, "tokenizer_config.json");
        if (!File.Exists(path))
            return true;
        return JsonNode.Parse(File.ReadAllText(path))?["do_lower_case"]?.GetValue<bool>() ?? true;
    }
}
