using Google.Protobuf;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Bert.Onnx;

namespace Read.Domain.Tests.Backbones;

public sealed class OnnxBertImporterTests
{
    private static readonly BertConfig Config = BertConfig.Tiny(vocabSize: 40, layers: 2, hiddenSize: 8, heads: 2, intermediateSize: 12, maxPositions: 16);

    [Theory]
    [InlineData(BundledBackbones.MiniLmId)]
    [InlineData(BundledBackbones.ArcticXsId)]
    public void Import_BundledBackbone_WritesEveryBertTensorWithItsShapeAndLoads(string id)
    {
        using var temp = new TempDirectory();
        var result = BundledBackbones.Import(id, temp.Sub(id));

        var config = BertCheckpoint.ReadConfig(result.Directory);
        Assert.Equal((30522, 384, 6, 12, 1536, 512, 2, "gelu"),
            (config.VocabSize, config.HiddenSize, config.NumHiddenLayers, config.NumAttentionHeads, config.IntermediateSize, config.MaxPositionEmbeddings, config.TypeVocabSize, config.HiddenAct));
        Assert.Equal(1e-12, config.LayerNormEps, 1e-15);
        var header = SafeTensorsFile.ReadHeader(Path.Combine(result.Directory, HuggingFaceCheckpoint.WeightsFile));
        foreach (var (name, shape) in OnnxBertImporter.ExpectedShapes(config))
            Assert.True(header.TryGetValue(name, out var entry) && entry.Shape.SequenceEqual(shape), $"{name}: {(entry.Shape is null ? "missing" : string.Join("x", entry.Shape))}");
        // 22.7M with MiniLM's pooler, which the encoder does not use (arctic-xs's export has none).
        Assert.Equal(22_565_376, HuggingFaceCheckpoint.CountParameters(result.Directory));
        Assert.Equal(id == BundledBackbones.MiniLmId, header.ContainsKey("pooler.dense.weight"));
        Assert.Equal(30522, File.ReadAllLines(Path.Combine(result.Directory, "vocab.txt")).Length);
        Assert.Empty(Directory.GetDirectories(temp.Path, ".*tmp-*"));
        using var backbone = HuggingFaceCheckpoint.Load(id, result.Directory);
        Assert.Equal(22_565_376, backbone.Model.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void Convert_SyntheticGraph_NamesAndTransposesEveryLinearWeight()
    {
        var weights = SyntheticWeights();
        var (config, tensors) = OnnxBertImporter.Convert(OnnxModel.Parse(SyntheticOnnx(weights, rawData: true)));

        Assert.Equal((Config.NumHiddenLayers, Config.NumAttentionHeads, Config.IntermediateSize), (config.NumHiddenLayers, config.NumAttentionHeads, config.IntermediateSize));
        foreach (var (name, shape) in OnnxBertImporter.ExpectedShapes(Config))
        {
            Assert.Equal(shape, tensors[name].Shape);
            Assert.Equal(weights[name], tensors[name].Data);
        }
    }

    [Fact]
    public void Convert_FloatDataAndRawData_GiveTheSameTensors()
    {
        var weights = SyntheticWeights();
        var (_, raw) = OnnxBertImporter.Convert(OnnxModel.Parse(SyntheticOnnx(weights, rawData: true)));
        var (_, floats) = OnnxBertImporter.Convert(OnnxModel.Parse(SyntheticOnnx(weights, rawData: false)));
        Assert.Equal(raw.Keys.Order(), floats.Keys.Order());
        foreach (var (name, tensor) in raw)
            Assert.Equal(tensor.Data, floats[name].Data);
    }

    [Fact]
    public void Convert_MissingBias_FailsNamingIt()
    {
        var weights = SyntheticWeights();
        weights.Remove("encoder.layer.1.output.dense.bias");
        var error = Assert.Throws<InvalidDataException>(() => OnnxBertImporter.Convert(OnnxModel.Parse(SyntheticOnnx(weights, rawData: true))));
        Assert.Contains("'encoder.layer.1.output.dense.bias'", error.Message);
    }

    [Fact]
    public void Import_VocabularyOfTheWrongSize_FailsBeforeWriting()
    {
        using var temp = new TempDirectory();
        var error = Assert.Throws<InvalidDataException>(() =>
            OnnxBertImporter.Import(SyntheticOnnx(SyntheticWeights(), rawData: true), "[PAD]\n[UNK]\n"u8.ToArray(), temp.Sub("out")));
        Assert.Contains("vocab.txt", error.Message);
        Assert.False(Directory.Exists(temp.Sub("out")));
    }

    /// <summary>Hugging Face tensors ([out, in] weights) of a tiny BERT with deterministic values.</summary>
    private static Dictionary<string, float[]> SyntheticWeights()
    {
        var random = new Random(7);
        return OnnxBertImporter.ExpectedShapes(Config).ToDictionary(
            p => p.Name,
            p => Enumerable.Range(0, (int)p.Shape.Aggregate(1L, (a, b) => a * b)).Select(_ => (float)random.NextDouble() - 0.5f).ToArray());
    }

    /// <summary>
    /// An ONNX model shaped like a PyTorch BERT export, with only the nodes the importer reads: named embeddings,
    /// biases and LayerNorms; anonymous [in, out] weights feeding MatMul then Add(bias); the head split Reshape;
    /// a LayerNorm's Sqrt(x + eps); an Erf.
    /// </summary>
    private static byte[] SyntheticOnnx(Dictionary<string, float[]> weights, bool rawData)
    {
        var shapes = OnnxBertImporter.ExpectedShapes(Config).ToDictionary(p => p.Name, p => p.Shape);
        var graph = new List<byte[]>();
        var initializers = new List<byte[]>();
        var anonymous = 0;
        foreach (var (name, shape) in shapes)
        {
            if (name.StartsWith("encoder.", StringComparison.Ordinal) && name.EndsWith("dense.weight", StringComparison.Ordinal) || name.EndsWith("query.weight", StringComparison.Ordinal)
                || name.EndsWith("key.weight", StringComparison.Ordinal) || name.EndsWith("value.weight", StringComparison.Ordinal))
            {
                var prefix = name[..^".weight".Length];
                var anon = (900 + anonymous++).ToString(System.Globalization.CultureInfo.InvariantCulture);
                initializers.Add(Tensor(anon, [shape[1], shape[0]], Transpose(weights[name], (int)shape[0], (int)shape[1]), rawData));
                graph.Add(Node("MatMul", "MatMul_" + anon, ["h_" + anon, anon], ["mm_" + anon]));
                graph.Add(Node("Add", "Add_" + anon, [prefix + ".bias", "mm_" + anon], [prefix + ".out"]));
            }
            else if (weights.TryGetValue(name, out var data))
            {
                initializers.Add(Tensor(name, shape, data, rawData));
            }
        }

        graph.Add(Node("Constant", "heads", [], ["heads"], Int64Tensor("", [1], [Config.NumAttentionHeads])));
        graph.Add(Node("Constant", "head_size", [], ["head_size"], Int64Tensor("", [1], [Config.HiddenSize / Config.NumAttentionHeads])));
        graph.Add(Node("Concat", "Concat_q", ["batch", "sequence", "heads", "head_size"], ["q_shape"]));
        graph.Add(Node("Reshape", "Reshape_q", ["encoder.layer.0.attention.self.query.out", "q_shape"], ["q_heads"]));
        graph.Add(Node("Constant", "eps", [], ["eps"], Tensor("", [], [1e-12f], rawData: true)));
        graph.Add(Node("Add", "Add_eps", ["variance", "eps"], ["variance_eps"]));
        graph.Add(Node("Sqrt", "Sqrt_0", ["variance_eps"], ["std"]));
        graph.Add(Node("Erf", "Erf_0", ["scaled"], ["erf"]));

        return Message(o =>
        {
            o.WriteTag(1, WireFormat.WireType.Varint);
            o.WriteInt64(7);
            Bytes(o, 7, Message(g =>
            {
                foreach (var node in graph)
                    Bytes(g, 1, node);
                foreach (var initializer in initializers)
                    Bytes(g, 5, initializer);
                foreach (var input in new[] { "input_ids", "attention_mask", "token_type_ids" })
                    Bytes(g, 11, Message(v => Text(v, 1, input)));
                Bytes(g, 12, Message(v => Text(v, 1, "last_hidden_state")));
            }));
        });
    }

    private static float[] Transpose(float[] data, int rows, int columns)
    {
        var result = new float[data.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
                result[c * rows + r] = data[r * columns + c];
        }

        return result;
    }

    private static byte[] Node(string op, string name, string[] inputs, string[] outputs, byte[]? value = null) => Message(o =>
    {
        foreach (var input in inputs)
            Text(o, 1, input);
        foreach (var output in outputs)
            Text(o, 2, output);
        Text(o, 3, name);
        Text(o, 4, op);
        if (value is not null)
            Bytes(o, 5, Message(a => { Text(a, 1, "value"); Bytes(a, 5, value); }));
    });

    private static byte[] Tensor(string name, long[] dims, float[] data, bool rawData) => Message(o =>
    {
        foreach (var dim in dims)
        {
            o.WriteTag(1, WireFormat.WireType.Varint);
            o.WriteInt64(dim);
        }

        o.WriteTag(2, WireFormat.WireType.Varint);
        o.WriteInt32(1);
        if (rawData)
        {
            Text(o, 8, name);
            Bytes(o, 9, data.SelectMany(BitConverter.GetBytes).ToArray());
        }
        else
        {
            // Packed repeated float (field 4), and the name after the data, as some writers order it.
            Bytes(o, 4, data.SelectMany(BitConverter.GetBytes).ToArray());
            Text(o, 8, name);
        }
    });

    private static byte[] Int64Tensor(string name, long[] dims, long[] data) => Message(o =>
    {
        foreach (var dim in dims)
        {
            o.WriteTag(1, WireFormat.WireType.Varint);
            o.WriteInt64(dim);
        }

        o.WriteTag(2, WireFormat.WireType.Varint);
        o.WriteInt32(7);
        foreach (var value in data)
        {
            o.WriteTag(7, WireFormat.WireType.Varint);
            o.WriteInt64(value);
        }

        Text(o, 8, name);
    });

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var stream = new MemoryStream();
        var output = new CodedOutputStream(stream);
        write(output);
        output.Flush();
        return stream.ToArray();
    }

    private static void Bytes(CodedOutputStream o, int field, byte[] bytes)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteBytes(ByteString.CopyFrom(bytes));
    }

    private static void Text(CodedOutputStream o, int field, string text)
    {
        o.WriteTag(field, WireFormat.WireType.LengthDelimited);
        o.WriteString(text);
    }
}
