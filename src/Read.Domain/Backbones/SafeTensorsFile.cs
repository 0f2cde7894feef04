using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Read.Domain.Backbones;

/// <summary>One tensor of a safetensors file, widened to float32.</summary>
internal sealed record SafeTensor(long[] Shape, float[] Data)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// Minimal safetensors reader/writer (8-byte little-endian header length, JSON header, raw little-endian data).
/// Own code rather than a library so that errors can name the offending tensor and F16/BF16 widen on read.
/// </summary>
internal static class SafeTensorsFile
{
    public static Dictionary<string, SafeTensor> Read(ReadOnlySpan<byte> bytes)
    {
        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var (name, (dtype, shape, begin, end)) in ReadHeader(bytes, bytes.Length, "The safetensors file"))
        {
            var count = shape.Aggregate(1L, (a, b) => a * b);
            if (dtype is not ("F32" or "F16" or "BF16" or "I64"))
                throw new InvalidDataException($"Tensor '{name}' has unsupported dtype {dtype}.");
            var raw = bytes[(int)begin..(int)end];
            var data = new float[count];
            for (var i = 0; i < count; i++)
            {
                data[i] = dtype switch
                {
                    "F32" => BinaryPrimitives.ReadSingleLittleEndian(raw[(i * 4)..]),
                    "F16" => (float)BinaryPrimitives.ReadHalfLittleEndian(raw[(i * 2)..]),
                    "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw[(i * 2)..]) << 16),
                    _ => BinaryPrimitives.ReadInt64LittleEndian(raw[(i * 8)..]),
                };
            }

            tensors[name] = new SafeTensor(shape, data);
        }

        return tensors;
    }

    /// <summary>
    /// The header of the safetensors file at <paramref name="path"/>, read without touching the data: every tensor's
    /// dtype, shape and absolute byte range, checked against its shape and the file's size.
    /// </summary>
    public static Dictionary<string, SafeTensorEntry> ReadHeader(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        if (stream.Read(lengthBytes) != 8)
            throw new InvalidDataException($"{path} is not a safetensors file: shorter than its header length.");
        var length = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (length <= 0 || length > MaxHeaderBytes || 8 + length > stream.Length)
            throw new InvalidDataException($"{path} is not a safetensors file: bad header length.");
        var prefix = new byte[8 + length];
        lengthBytes.CopyTo(prefix);
        stream.ReadExactly(prefix.AsSpan(8));
        return ReadHeader(prefix, stream.Length, path);
    }

    /// <summary>A safetensors file of <paramref name="tensors"/> stored as <paramref name="dtype"/> (F32, F16 or BF16).</summary>
    public static byte[] Write(IEnumerable<KeyValuePair<string, SafeTensor>> tensors, string dtype = "F32")
    {
        var width = dtype switch { "F32" => 4, "F16" or "BF16" => 2, _ => throw new ArgumentException($"Cannot write dtype {dtype}.", nameof(dtype)) };
        var ordered = tensors.OrderBy(t => t.Key, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, tensor) in ordered)
        {
            var size = tensor.Data.LongLength * width;
            header[name] = new JsonObject
            {
                ["dtype"] = dtype,
                ["shape"] = new JsonArray(tensor.Shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }

        var headerText = header.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        // The header is padded with spaces to a multiple of 8 bytes, as the reference implementation does.
        var headerBytes = Encoding.UTF8.GetBytes(headerText.PadRight((headerText.Length + 7) / 8 * 8));
        var result = new byte[8 + headerBytes.Length + offset];
        BinaryPrimitives.WriteInt64LittleEndian(result, headerBytes.Length);
        headerBytes.CopyTo(result, 8);
        var position = 8 + headerBytes.Length;
        foreach (var (_, tensor) in ordered)
        {
            foreach (var value in tensor.Data)
            {
                var target = result.AsSpan(position);
                switch (dtype)
                {
                    case "F32":
                        BinaryPrimitives.WriteSingleLittleEndian(target, value);
                        break;
                    case "F16":
                        BinaryPrimitives.WriteHalfLittleEndian(target, (Half)value);
                        break;
                    default:
                        BinaryPrimitives.WriteUInt16LittleEndian(target, ToBFloat16(value));
                        break;
                }

                position += width;
            }
        }

        return result;
    }

    /// <summary>float32 to bfloat16 bits, rounding to nearest even (as torch does); NaN stays NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        if (float.IsNaN(value))
            return 0x7FC0;
        var bits = (uint)BitConverter.SingleToInt32Bits(value);
        var rounding = ((bits >> 16) & 1) + 0x7FFF;
        return (ushort)((bits + rounding) >> 16);
    }

    // The format allows 100 MB of header; more is a corrupt length field, not a real file.
    private const long MaxHeaderBytes = 100_000_000;

    /// <summary>
    /// Parses the header at the start of <paramref name="prefix"/> (length field and JSON) of a file of
    /// <paramref name="fileLength"/> bytes; errors name <paramref name="source"/> and the tensor.
    /// </summary>
    private static Dictionary<string, SafeTensorEntry> ReadHeader(ReadOnlySpan<byte> prefix, long fileLength, string source)
    {
        if (prefix.Length < 8)
            throw new InvalidDataException($"{source} is not a safetensors file: shorter than its header length.");
        var length = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (length <= 0 || length > MaxHeaderBytes || 8 + length > prefix.Length)
            throw new InvalidDataException($"{source} is not a safetensors file: bad header length.");
        JsonObject header;
        try
        {
            header = JsonNode.Parse(prefix.Slice(8, (int)length))?.AsObject() ?? throw new InvalidDataException($"{source} has an empty header.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source} has a header that is not JSON: {e.Message}", e);
        }

        var dataStart = 8 + length;
        var entries = new Dictionary<string, SafeTensorEntry>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__" || node is null)
                continue;
            var dtype = node["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"{source}: tensor '{name}' has no dtype.");
            var shape = node["shape"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"{source}: tensor '{name}' has no shape.");
            var offsets = node["data_offsets"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"{source}: tensor '{name}' has no data_offsets.");
            var width = dtype switch { "F64" or "I64" => 8, "F32" or "I32" => 4, "F16" or "BF16" or "I16" => 2, "I8" or "U8" or "BOOL" => 1, _ => 0 };
            var count = shape.Aggregate(1L, (a, b) => a * b);
            if (width == 0 || offsets.Length != 2 || offsets[1] - offsets[0] != count * width || dataStart + offsets[1] > fileLength)
                throw new InvalidDataException($"{source}: tensor '{name}' has data_offsets that do not match its shape, dtype {dtype} or the file size.");
            entries[name] = new SafeTensorEntry(dtype, shape, dataStart + offsets[0], dataStart + offsets[1]);
        }

        return entries;
    }
}

/// <summary>One tensor in a safetensors header: its dtype name, shape and absolute byte range in the file.</summary>
internal readonly record struct SafeTensorEntry(string Dtype, long[] Shape, long Begin, long End);
