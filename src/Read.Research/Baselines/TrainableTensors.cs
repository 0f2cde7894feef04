using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

/// <summary>"Adapter size on disk": the trainable tensors alone, written as float32 safetensors.</summary>
internal static class TrainableTensors
{
    /// <summary>
    /// Writes <paramref name="tensors"/> to a temporary file under <paramref name="directory"/> and returns its size in
    /// bytes. Streams tensor by tensor, so measuring a fully fine-tuned model does not double its memory.
    /// </summary>
    public static long MeasureBytes(IEnumerable<(string Name, Tensor Tensor)> tensors, string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "trainable-" + Guid.NewGuid().ToString("N") + ".safetensors");
        try
        {
            Write(path, tensors);
            return new FileInfo(path).Length;
        }
        finally
        {
            File.Delete(path);
        }
    }

    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        var ordered = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var header = new JsonObject();
        long offset = 0;
        foreach (var (name, tensor) in ordered)
        {
            var size = tensor.numel() * 4;
            header[name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray(tensor.shape.Select(s => (JsonNode)s).ToArray()),
                ["data_offsets"] = new JsonArray(offset, offset + size),
            };
            offset += size;
        }

        var text = header.ToJsonString();
        var headerBytes = Encoding.UTF8.GetBytes(text.PadRight((text.Length + 7) / 8 * 8));
        using var stream = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, headerBytes.Length);
        stream.Write(length);
        stream.Write(headerBytes);
        foreach (var (_, tensor) in ordered)
        {
            using var cpu = tensor.detach().cpu().to_type(ScalarType.Float32).contiguous();
            // Little-endian hosts only (x64, arm64): the tensor's bytes are the file's bytes.
            stream.Write(MemoryMarshal.AsBytes(cpu.data<float>().ToArray().AsSpan()));
        }
    }
}
