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
        var (header, dataStart) = ReadHeader(bytes);
        var tensors = new Dictionary<string, SafeTensor>(StringComparer.Ordinal);
        foreach (var (name, node) in header)
        {
            if (name == "__metadata__" || node is null)
                continue;
            var dtype = node["dtype"]?.GetValue<string>() ?? throw new InvalidDataException($"Tensor '{name}' has no dtype.");
            var shape = node["shape"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"Tensor '{name}' has no shape.");
            var offsets = node["data_offsets"]?.AsArray().Select(s => s!.GetValue<long>()).ToArray() ?? throw new InvalidDataException($"Tensor '{name}' has no data_offsets.");
            var count = shape.Aggregate(1L, (a, b) => a * b);
            var width = dtype switch { "F32" => 4, "F16" or "BF16" => 2, "I64" => 8, _ => throw new InvalidDataException($"Tensor '{name}' has unsupported dtype {dtype}.") };
            if (offsets.Length != 2 || offsets[1] - offsets[0] != count * width || dataStart + offsets[1] > bytes.Length)
                throw new InvalidDataException($"Tensor '{name}' has data_offsets that do not match its shape or the file size.");
            var raw = bytes.Slice((int)(dataStart + offsets[0]), (int)(count * width));
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

    /// <summary>Tensor names and shapes only, without touching the data.</summary>
    public static Dictionary<string, long[]> ReadShapes(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        var length = BinaryPrimitives.ReadInt64LittleEndian(lengthBytes);
        if (length <= 0 || length > 100_000_000)
            throw new InvalidDataException($"{path} is not a safetensors file.");
        var headerBytes = new byte[length];
        stream.ReadExactly(headerBytes);
        var header = JsonNode.Parse(headerBytes)?.AsObject() ?? throw new InvalidDataException($"{path} has an empty header.");
        return header.Where(p => p.Key != "__metadata__" && p.Value is not null)
            .ToDictionary(p => p.Key, p => p.Value!["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray(), StringComparer.Ordinal);
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

    private static (JsonObject Header, long DataStart) ReadHeader(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length < 8)
            throw new InvalidDataException("Not a safetensors file: shorter than its header length.");
        var length = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        if (length <= 0 || 8 + length > bytes.Length)
            throw new InvalidDataException("Not a safetensors file: bad header length.");
        var header = JsonNode.Parse(bytes.Slice(8, (int)length))?.AsObject() ?? throw new InvalidDataException("Empty safetensors header.");
        return (header, 8 + length);
    }
}
