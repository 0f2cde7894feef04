using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Read.Domain.Backbones.Bert.Onnx;

/// <summary>What an ONNX import wrote.</summary>
public sealed record OnnxImportResult(string Directory, BertConfig Config, int Tensors, long Parameters, IReadOnlyList<string> Files);

/// <summary>
/// Converts a BERT encoder exported to ONNX (float32, weights as initializers) into a Hugging Face checkpoint
/// directory: config.json, model.safetensors, vocab.txt, tokenizer_config.json.
/// </summary>
/// <remarks>
/// Exporters keep Hugging Face names on embeddings, LayerNorms and biases, but the linear weights become anonymous
/// initializers stored [in, out] that feed a MatMul. Each is named by following its MatMul output into the Add
/// that adds <c>&lt;prefix&gt;.bias</c>, and transposed to [out, in]. Anything that cannot be mapped is an error
/// naming the tensor, never a silently missing weight.
/// </remarks>
public static partial class OnnxBertImporter
{
    /// <summary>Imports <paramref name="onnxPath"/> with the WordPiece vocabulary at <paramref name="vocabPath"/>.</summary>
    public static OnnxImportResult ImportFiles(string onnxPath, string vocabPath, string directory, bool lowerCase = true, bool overwrite = false) =>
        Import(File.ReadAllBytes(onnxPath), File.ReadAllBytes(vocabPath), directory, lowerCase, overwrite);

    /// <summary>
    /// Writes the checkpoint into a temporary sibling of <paramref name="directory"/> and renames it into place, so a
    /// crash or a concurrent import never leaves half a checkpoint. An existing complete checkpoint is kept unless
    /// <paramref name="overwrite"/>.
    /// </summary>
    public static OnnxImportResult Import(byte[] onnx, byte[] vocabulary, string directory, bool lowerCase = true, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentNullException.ThrowIfNull(vocabulary);
        directory = Path.GetFullPath(directory);
        if (!overwrite && File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile)))
            throw new IOException($"{directory} already holds a checkpoint; pass overwrite to replace it.");

        var (config, tensors) = Convert(OnnxModel.Parse(onnx));
        var vocabLines = Encoding.UTF8.GetString(vocabulary).Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        while (vocabLines.Count > 0 && vocabLines[^1].Length == 0)
            vocabLines.RemoveAt(vocabLines.Count - 1);
        if (vocabLines.Count != config.VocabSize)
            throw new InvalidDataException($"vocab.txt has {vocabLines.Count} tokens but embeddings.word_embeddings.weight has {config.VocabSize} rows.");

        var parent = Path.GetDirectoryName(directory) ?? ".";
        Directory.CreateDirectory(parent);
        var temporary = Path.Combine(parent, "." + Path.GetFileName(directory) + ".tmp-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(temporary);
        try
        {
            File.WriteAllText(Path.Combine(temporary, HuggingFaceCheckpoint.ConfigFile), ConfigJson(config));
            File.WriteAllText(Path.Combine(temporary, "tokenizer_config.json"), new JsonObject
            {
                ["do_lower_case"] = lowerCase,
                ["model_max_length"] = config.MaxPositionEmbeddings,
                ["tokenizer_class"] = "BertTokenizer",
            }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.WriteAllLines(Path.Combine(temporary, HuggingFaceCheckpoint.VocabularyFile), vocabLines, new UTF8Encoding(false));
            File.WriteAllBytes(Path.Combine(temporary, HuggingFaceCheckpoint.WeightsFile), SafeTensorsFile.Write(tensors));
            var files = Directory.GetFiles(temporary).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
            Publish(temporary, directory, overwrite);
            var parameters = tensors.Where(t => !t.Key.StartsWith("pooler.", StringComparison.Ordinal)).Sum(t => t.Value.Data.LongLength);
            return new OnnxImportResult(directory, config, tensors.Count, parameters, files!);
        }
        finally
        {
            if (Directory.Exists(temporary))
                Directory.Delete(temporary, recursive: true);
        }
    }

    /// <summary>The BERT configuration and Hugging Face-named float32 tensors of an ONNX BERT graph.</summary>
    internal static (BertConfig Config, Dictionary<string, SafeTensor> Tensors) Convert(OnnxModel model)
    {
        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        var normalised = model.Initializers.Values.ToDictionary(t => Normalise(t.Name), t => t, StringComparer.Ordinal);

        // Named initializers: embeddings, LayerNorms, biases (and the pooler, kept as Hugging Face does).
        foreach (var (name, tensor) in normalised)
        {
            if (tensor.DataType == OnnxTensor.Float && IsBertName(name) && !name.EndsWith("position_ids", StringComparison.Ordinal))
                tensors[name] = new SafeTensor(tensor.Dims, tensor.Floats!);
        }

        // Anonymous linear weights: MatMul(x, W[in, out]) -> Add(<prefix>.bias, .) names W as <prefix>.weight.
        var consumers = model.Nodes.SelectMany(n => n.Inputs.Select(i => (Input: i, Node: n))).ToLookup(p => p.Input, p => p.Node, StringComparer.Ordinal);
        var unnamed = new List<string>();
        foreach (var matmul in model.Nodes.Where(n => n.OpType == "MatMul"))
        {
            var weightName = matmul.Inputs.Count == 2 ? matmul.Inputs[1] : "";
            if (!model.Initializers.TryGetValue(weightName, out var weight))
                continue; // activation x activation (attention scores)
            if (weight.DataType != OnnxTensor.Float || weight.Dims.Length != 2)
                throw new InvalidDataException($"ONNX initializer '{weightName}' (MatMul '{matmul.Name}') is not a 2-D float32 matrix: {weight.ShapeText}.");
            var bias = consumers[matmul.Outputs[0]]
                .Where(n => n.OpType == "Add")
                .SelectMany(n => n.Inputs)
                .Select(i => model.Initializers.TryGetValue(i, out var t) ? Normalise(t.Name) : null)
                .FirstOrDefault(n => n is not null && n.EndsWith(".bias", StringComparison.Ordinal));
            if (bias is null)
            {
                var added = consumers[matmul.Outputs[0]].Where(n => n.OpType == "Add").SelectMany(n => n.Inputs).Where(i => i != matmul.Outputs[0]);
                unnamed.Add($"'{weightName}' (MatMul '{matmul.Name}' is added to {string.Join(", ", added.Select(a => $"'{a}'").DefaultIfEmpty("nothing"))}, not to a '<prefix>.bias' initializer)");
                continue;
            }

            var target = bias[..^".bias".Length] + ".weight";
            if (Normalise(weightName) == target)
                continue; // already named (some exporters keep the name)
            if (tensors.ContainsKey(target))
                throw new InvalidDataException($"ONNX initializers map twice to '{target}' (second: '{weightName}').");
            tensors[target] = Transpose(weight);
        }

        var config = InferConfig(model, normalised);
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new InvalidDataException("ONNX BERT import: " + string.Join(" ", errors));
        var missing = new List<string>();
        foreach (var (name, shape) in ExpectedShapes(config))
        {
            if (!tensors.TryGetValue(name, out var tensor))
                missing.Add($"'{name}'");
            else if (!tensor.Shape.SequenceEqual(shape))
                throw new InvalidDataException($"ONNX BERT import: tensor '{name}' has shape {tensor.ShapeText}, expected [{string.Join(", ", shape)}].");
        }

        if (missing.Count > 0 || unnamed.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0)
                parts.Add($"tensors not found in the graph: {string.Join(", ", missing)}");
            if (unnamed.Count > 0)
                parts.Add($"linear weights that cannot be named: {string.Join("; ", unnamed)}");
            throw new InvalidDataException("ONNX BERT import failed: " + string.Join(". ", parts) + ".");
        }

        return (config, tensors);
    }

    /// <summary>Every tensor a Hugging Face BERT encoder checkpoint holds (pooler excluded), with its shape.</summary>
    public static IEnumerable<(string Name, long[] Shape)> ExpectedShapes(BertConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long d = config.HiddenSize, f = config.IntermediateSize;
        yield return ("embeddings.word_embeddings.weight", [config.VocabSize, d]);
        yield return ("embeddings.position_embeddings.weight", [config.MaxPositionEmbeddings, d]);
        yield return ("embeddings.token_type_embeddings.weight", [config.TypeVocabSize, d]);
        yield return ("embeddings.LayerNorm.weight", [d]);
        yield return ("embeddings.LayerNorm.bias", [d]);
        for (var l = 0; l < config.NumHiddenLayers; l++)
        {
            var p = $"encoder.layer.{l}";
            foreach (var linear in new[] { "attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense" })
            {
                yield return ($"{p}.{linear}.weight", [d, d]);
                yield return ($"{p}.{linear}.bias", [d]);
            }

            yield return ($"{p}.attention.output.LayerNorm.weight", [d]);
            yield return ($"{p}.attention.output.LayerNorm.bias", [d]);
            yield return ($"{p}.intermediate.dense.weight", [f, d]);
            yield return ($"{p}.intermediate.dense.bias", [f]);
            yield return ($"{p}.output.dense.weight", [d, f]);
            yield return ($"{p}.output.dense.bias", [d]);
            yield return ($"{p}.output.LayerNorm.weight", [d]);
            yield return ($"{p}.output.LayerNorm.bias", [d]);
        }
    }

    /// <summary>config.json with every field Hugging Face writes for a BERT model.</summary>
    internal static string ConfigJson(BertConfig config) => new JsonObject
    {
        ["architectures"] = new JsonArray("BertModel"),
        ["attention_probs_dropout_prob"] = 0.1,
        ["classifier_dropout"] = null,
        ["gradient_checkpointing"] = false,
        ["hidden_act"] = config.HiddenAct,
        ["hidden_dropout_prob"] = 0.1,
        ["hidden_size"] = config.HiddenSize,
        ["initializer_range"] = config.InitializerRange,
        ["intermediate_size"] = config.IntermediateSize,
        ["layer_norm_eps"] = config.LayerNormEps,
        ["max_position_embeddings"] = config.MaxPositionEmbeddings,
        ["model_type"] = config.ModelType,
        ["num_attention_heads"] = config.NumAttentionHeads,
        ["num_hidden_layers"] = config.NumHiddenLayers,
        ["pad_token_id"] = config.PadTokenId,
        ["position_embedding_type"] = "absolute",
        ["torch_dtype"] = "float32",
        ["transformers_version"] = "4.44.0",
        ["type_vocab_size"] = config.TypeVocabSize,
        ["use_cache"] = true,
        ["vocab_size"] = config.VocabSize,
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private static BertConfig InferConfig(OnnxModel model, Dictionary<string, OnnxTensor> named)
    {
        OnnxTensor Required(string name) => named.TryGetValue(name, out var t) ? t
            : throw new InvalidDataException($"ONNX BERT import: tensor '{name}' was not found in the graph.");
        var words = Required("embeddings.word_embeddings.weight");
        var positions = Required("embeddings.position_embeddings.weight");
        var types = Required("embeddings.token_type_embeddings.weight");
        var layers = named.Keys.Select(n => LayerIndex().Match(n)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max() + 1;
        if (layers == 0)
            throw new InvalidDataException("ONNX BERT import: no 'encoder.layer.N.*' tensors in the graph.");
        var hidden = (int)words.Dims[1];
        var intermediate = (int)Required("encoder.layer.0.intermediate.dense.bias").Dims[0];
        return new BertConfig(
            VocabSize: (int)words.Dims[0],
            HiddenSize: hidden,
            NumHiddenLayers: layers,
            NumAttentionHeads: InferHeads(model, hidden),
            IntermediateSize: intermediate,
            MaxPositionEmbeddings: (int)positions.Dims[0],
            TypeVocabSize: (int)types.Dims[0],
            LayerNormEps: InferLayerNormEps(model),
            HiddenAct: InferActivation(model));
    }

    /// <summary>Heads from the Reshape that splits the first query projection into (B, S, H, dh).</summary>
    private static int InferHeads(OnnxModel model, int hidden)
    {
        var producers = Producers(model);
        var queryAdd = model.Nodes.FirstOrDefault(n => n.OpType == "Add" && n.Inputs.Any(i => Normalise(i) == "encoder.layer.0.attention.self.query.bias"))
            ?? throw new InvalidDataException("ONNX BERT import: no Add of 'encoder.layer.0.attention.self.query.bias'; cannot find the number of attention heads.");
        var reshape = model.Nodes.FirstOrDefault(n => n.OpType == "Reshape" && n.Inputs[0] == queryAdd.Outputs[0])
            ?? throw new InvalidDataException("ONNX BERT import: the query projection of layer 0 is not reshaped into heads; cannot find the number of attention heads.");
        var target = ConstantValues(model, producers, reshape.Inputs[1]);
        if (target is null && producers.TryGetValue(reshape.Inputs[1], out var concat) && concat.OpType == "Concat")
            target = concat.Inputs.Select(i => ConstantValues(model, producers, i) is [var v] ? v : 0L).ToArray();
        if (target is { Length: 4 })
        {
            if (target[2] > 0 && hidden % target[2] == 0)
                return (int)target[2];
            if (target[3] > 0 && hidden % target[3] == 0)
                return hidden / (int)target[3];
        }

        throw new InvalidDataException($"ONNX BERT import: cannot read the number of attention heads from Reshape '{reshape.Name}'.");
    }

    private static double InferLayerNormEps(OnnxModel model)
    {
        var fused = model.Nodes.FirstOrDefault(n => n.OpType == "LayerNormalization");
        if (fused is not null)
            return fused.FloatAttributes.TryGetValue("epsilon", out var e) ? e : 1e-5;
        // Decomposed LayerNorm: Sqrt(ReduceMean(...) + eps); the first one belongs to the embeddings.
        var producers = Producers(model);
        foreach (var sqrt in model.Nodes.Where(n => n.OpType == "Sqrt"))
        {
            if (producers.TryGetValue(sqrt.Inputs[0], out var add) && add.OpType == "Add")
            {
                foreach (var input in add.Inputs)
                {
                    if (ConstantFloat(model, producers, input) is { } eps)
                        return eps;
                }
            }
        }

        throw new InvalidDataException("ONNX BERT import: cannot find the LayerNorm epsilon (no LayerNormalization node and no Sqrt(x + eps)).");
    }

    private static string InferActivation(OnnxModel model)
    {
        var ops = model.Nodes.Select(n => n.OpType).ToHashSet(StringComparer.Ordinal);
        if (ops.Contains("Erf") || ops.Contains("Gelu"))
            return "gelu";
        if (ops.Contains("FastGelu") || (ops.Contains("Tanh") && ops.Contains("Pow") && model.Nodes.Count(n => n.OpType == "Tanh") > 1))
            return "gelu_new";
        if (ops.Contains("Relu"))
            return "relu";
        throw new InvalidDataException("ONNX BERT import: cannot recognise the feed-forward activation (no Erf, Gelu, Tanh or Relu).");
    }

    private static Dictionary<string, OnnxNode> Producers(OnnxModel model) =>
        model.Nodes.SelectMany(n => n.Outputs.Select(o => (o, n))).ToDictionary(p => p.o, p => p.n, StringComparer.Ordinal);

    private static long[]? ConstantValues(OnnxModel model, Dictionary<string, OnnxNode> producers, string name)
    {
        var tensor = model.Initializers.TryGetValue(name, out var t) ? t : producers.TryGetValue(name, out var n) && n.OpType == "Constant" ? n.Value : null;
        return tensor?.Int64s;
    }

    private static double? ConstantFloat(OnnxModel model, Dictionary<string, OnnxNode> producers, string name)
    {
        var tensor = model.Initializers.TryGetValue(name, out var t) ? t : producers.TryGetValue(name, out var n) && n.OpType == "Constant" ? n.Value : null;
        return tensor?.Floats is [var v] ? v : null;
    }

    private static SafeTensor Transpose(OnnxTensor weight)
    {
        int rows = (int)weight.Dims[0], columns = (int)weight.Dims[1];
        var source = weight.Floats!;
        var result = new float[source.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
                result[c * rows + r] = source[r * columns + c];
        }

        return new SafeTensor([columns, rows], result);
    }

    private static string Normalise(string name) => name.StartsWith("bert.", StringComparison.Ordinal) ? name[5..] : name;

    private static bool IsBertName(string name) =>
        name.StartsWith("embeddings.", StringComparison.Ordinal) || name.StartsWith("encoder.", StringComparison.Ordinal) || name.StartsWith("pooler.", StringComparison.Ordinal);

    private static void Publish(string temporary, string directory, bool overwrite)
    {
        if (Directory.Exists(directory))
        {
            if (!overwrite && File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile)))
                return; // someone else finished first; theirs is complete
            if (!overwrite && Directory.EnumerateFileSystemEntries(directory).Any())
                throw new IOException($"{directory} exists and is not empty; pass overwrite to replace it.");
            var stale = directory + ".old-" + Guid.NewGuid().ToString("N");
            Directory.Move(directory, stale);
            Directory.Delete(stale, recursive: true);
        }

        try
        {
            Directory.Move(temporary, directory);
        }
        catch (IOException) when (File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile)))
        {
            // Lost a race with a concurrent import of the same checkpoint: keep the winner's.
        }
    }

    [GeneratedRegex(@"^encoder\.layer\.(\d+)\.")]
    private static partial Regex LayerIndex();
}
