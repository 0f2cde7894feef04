using System.Buffers.Binary;
using System.Text;
using Read.Domain.Backbones;

namespace Read.Domain.Tests.Backbones;

/// <summary>The one safetensors header parser every reader uses: byte ranges from the format, and corrupt files named.</summary>
public sealed class SafeTensorsHeaderTests
{
    [Fact]
    public void ReadHeader_GivesAbsoluteByteRanges_AfterTheHeader()
    {
        using var temp = new TempDirectory();
        var path = Path.Combine(temp.Path, "m.safetensors");
        File.WriteAllBytes(path, SafeTensorsFile.Write([new("a", new SafeTensor([2, 3], new float[6])), new("b", new SafeTensor([4], new float[4]))]));
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8));

        var entries = SafeTensorsFile.ReadHeader(path);
        // By hand from the format: data starts after the 8-byte length and the JSON header, tensors packed in order.
        var a = entries["a"];
        var b = entries["b"];
        Assert.Equal("F32", a.Dtype);
        Assert.Equal([2L, 3L], a.Shape);
        Assert.Equal(8 + headerLength, Math.Min(a.Begin, b.Begin));
        Assert.Equal(6 * 4, a.End - a.Begin);
        Assert.Equal(4 * 4, b.End - b.Begin);
        Assert.Equal(new FileInfo(path).Length, Math.Max(a.End, b.End));
    }

    [Theory]
    [InlineData("length", "bad header length")]
    [InlineData("json", "not JSON")]
    [InlineData("offsets", "tensor 'w' has data_offsets that do not match")]
    [InlineData("truncated", "tensor 'w' has data_offsets that do not match")]
    public void ReadHeader_CorruptFile_InvalidDataNamingFileAndTensor(string corruption, string expected)
    {
        using var temp = new TempDirectory();
        var path = Path.Combine(temp.Path, "m.safetensors");
        var json = corruption switch
        {
            "json" => "{\"w\": {\"dtype\": \"F32\", ",
            "offsets" => "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}",
            _ => "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
        };
        var header = Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + (corruption == "truncated" ? 8 : 16)];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, corruption == "length" ? 1L << 40 : header.Length);
        header.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.ReadHeader(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(expected, error.Message);
    }
}
