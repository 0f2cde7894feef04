using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Google.Protobuf;

namespace Read.Domain.Backbones.Bert.Onnx;

/// <summary>One ONNX initializer or constant: dims, element type and its data (float32 or int64 widened as needed).</summary>
internal sealed record OnnxTensor(string Name, long[] Dims, int DataType, float[]? Floats, long[]? Int64s)
{
    public const int Float = 1;
    public const int Int64 = 7;

    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);

    public string ShapeText => "[" + string.Join(", ", Dims) + "]";
}

/// <summary>One graph node: op type, name, inputs, outputs and (for Constant) its tensor value.</summary>
internal sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, OnnxTensor? Value,
    IReadOnlyDictionary<string, float> FloatAttributes);

/// <summary>
/// The parts of an ONNX ModelProto that the BERT importer needs, read straight off the protobuf wire format
/// (no generated onnx.proto classes): graph nodes, initializers, input and output names.
/// </summary>
internal sealed class OnnxModel
{
    // Field numbers from onnx.proto.
    private const int ModelGraph = 7;
    private const int GraphNode = 1, GraphInitializer = 5, GraphInput = 11, GraphOutput = 12;
    private const int NodeInput = 1, NodeOutput = 2, NodeName = 3, NodeOpType = 4, NodeAttribute = 5;
    private const int AttributeName = 1, AttributeFloat = 2, AttributeTensor = 5;
    private const int ValueInfoName = 1;
    private const int TensorDims = 1, TensorDataType = 2, TensorFloatData = 4, TensorInt64Data = 7, TensorName = 8, TensorRawData = 9, TensorDataLocation = 14;

    private OnnxModel(List<OnnxNode> nodes, Dictionary<string, OnnxTensor> initializers, List<string> inputs, List<string> outputs)
    {
        Nodes = nodes;
        Initializers = initializers;
        Inputs = inputs;
        Outputs = outputs;
    }

    public IReadOnlyList<OnnxNode> Nodes { get; }

    /// <summary>Initializers by name, in file order.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }

    public IReadOnlyList<string> Inputs { get; }

    public IReadOnlyList<string> Outputs { get; }

    public static OnnxModel Parse(ReadOnlyMemory<byte> bytes)
    {
        ByteString? graph = null;
        var input = new CodedInputStream(MemoryMarshal.TryGetArray(bytes, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : bytes.ToArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == ModelGraph && WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited)
                graph = input.ReadBytes();
            else
                input.SkipLastField();
        }

        if (graph is null)
            throw new InvalidDataException("Not an ONNX model: no graph (ModelProto field 7).");

        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        var inputs = new List<string>();
        var outputs = new List<string>();
        var reader = graph.CreateCodedInput();
        while ((tag = reader.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case GraphNode:
                    nodes.Add(ReadNode(reader.ReadBytes()));
                    break;
                case GraphInitializer:
                    var tensor = ReadTensor(reader.ReadBytes());
                    if (!initializers.TryAdd(tensor.Name, tensor))
                        throw new InvalidDataException($"ONNX graph has two initializers named '{tensor.Name}'.");
                    break;
                case GraphInput:
                    inputs.Add(ReadValueInfoName(reader.ReadBytes()));
                    break;
                case GraphOutput:
                    outputs.Add(ReadValueInfoName(reader.ReadBytes()));
                    break;
                default:
                    reader.SkipLastField();
                    break;
            }
        }

        // Graph inputs may list initializers too (older exporters); keep only the real inputs.
        inputs.RemoveAll(initializers.ContainsKey);
        return new OnnxModel(nodes, initializers, inputs, outputs);
    }

    private static OnnxNode ReadNode(ByteString bytes)
    {
        string name = "", opType = "";
        var inputs = new List<string>();
        var outputs = new List<string>();
        OnnxTensor? value = null;
        var floats = new Dictionary<string, float>(StringComparer.Ordinal);
        var reader = bytes.CreateCodedInput();
        uint tag;
        while ((tag = reader.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case NodeInput: inputs.Add(reader.ReadString()); break;
                case NodeOutput: outputs.Add(reader.ReadString()); break;
                case NodeName: name = reader.ReadString(); break;
                case NodeOpType: opType = reader.ReadString(); break;
                case NodeAttribute:
                    var (attributeName, number, tensor) = ReadAttribute(reader.ReadBytes());
                    if (attributeName == "value" && tensor is not null)
                        value = tensor;
                    if (number is { } f)
                        floats[attributeName] = f;
                    break;
                default: reader.SkipLastField(); break;
            }
        }

        return new OnnxNode(opType, name, inputs, outputs, value, floats);
    }

    private static (string Name, float? Float, OnnxTensor? Tensor) ReadAttribute(ByteString bytes)
    {
        string name = "";
        float? number = null;
        OnnxTensor? tensor = null;
        var reader = bytes.CreateCodedInput();
        uint tag;
        while ((tag = reader.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case AttributeName: name = reader.ReadString(); break;
                case AttributeFloat: number = reader.ReadFloat(); break;
                case AttributeTensor: tensor = ReadTensor(reader.ReadBytes()); break;
                default: reader.SkipLastField(); break;
            }
        }

        return (name, number, tensor);
    }

    private static string ReadValueInfoName(ByteString bytes)
    {
        var reader = bytes.CreateCodedInput();
        uint tag;
        while ((tag = reader.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == ValueInfoName)
                return reader.ReadString();
            reader.SkipLastField();
        }

        return "";
    }

    /// <summary>Reads a TensorProto; float32 and int64 data from raw_data, float_data or int64_data (packed or not).</summary>
    internal static OnnxTensor ReadTensor(ByteString bytes)
    {
        var dims = new List<long>();
        var dataType = 0;
        string name = "";
        var floats = new List<float>();
        var int64s = new List<long>();
        ByteString? raw = null;
        var external = false;
        var reader = bytes.CreateCodedInput();
        uint tag;
        while ((tag = reader.ReadTag()) != 0)
        {
            var packed = WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited;
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case TensorDims:
                    if (packed)
                        ReadPackedVarints(reader.ReadBytes(), dims);
                    else
                        dims.Add(reader.ReadInt64());
                    break;
                case TensorDataType: dataType = reader.ReadInt32(); break;
                case TensorFloatData:
                    if (packed)
                    {
                        var span = reader.ReadBytes().Span;
                        for (var i = 0; i + 4 <= span.Length; i += 4)
                            floats.Add(BinaryPrimitives.ReadSingleLittleEndian(span[i..]));
                    }
                    else
                    {
                        floats.Add(reader.ReadFloat());
                    }

                    break;
                case TensorInt64Data:
                    if (packed)
                        ReadPackedVarints(reader.ReadBytes(), int64s);
                    else
                        int64s.Add(reader.ReadInt64());
                    break;
                case TensorName: name = reader.ReadString(); break;
                case TensorRawData: raw = reader.ReadBytes(); break;
                case TensorDataLocation: external = reader.ReadEnum() == 1; break;
                default: reader.SkipLastField(); break;
            }
        }

        var shape = dims.ToArray();
        var count = shape.Aggregate(1L, (a, b) => a * b);
        if (external)
            throw new InvalidDataException($"ONNX tensor '{name}' keeps its data in an external file, which is not supported.");
        float[]? floatData = null;
        long[]? int64Data = null;
        switch (dataType)
        {
            case OnnxTensor.Float:
                floatData = raw is not null ? MemoryMarshal.Cast<byte, float>(raw.Span).ToArray() : floats.ToArray();
                if (!BitConverter.IsLittleEndian)
                    throw new PlatformNotSupportedException("ONNX raw_data is little-endian; big-endian hosts are not supported.");
                if (floatData.LongLength != count)
                    throw new InvalidDataException($"ONNX tensor '{name}' has {floatData.LongLength} floats for shape [{string.Join(", ", shape)}].");
                break;
            case OnnxTensor.Int64:
                int64Data = raw is not null ? MemoryMarshal.Cast<byte, long>(raw.Span).ToArray() : int64s.ToArray();
                if (int64Data.LongLength != count)
                    throw new InvalidDataException($"ONNX tensor '{name}' has {int64Data.LongLength} int64 values for shape [{string.Join(", ", shape)}].");
                break;
        }

        return new OnnxTensor(name, shape, dataType, floatData, int64Data);
    }

    private static void ReadPackedVarints(ByteString bytes, List<long> into)
    {
        var reader = bytes.CreateCodedInput();
        while (!reader.IsAtEnd)
            into.Add(reader.ReadInt64());
    }
}
