using System.Security.Cryptography;
using Read.Domain.Backbones;
using TorchSharp;

namespace Read.Domain.Tests;

public sealed class HuggingFaceCheckpointTests
{
    private static string WriteSmall(TempDirectory temp)
    {
        TinyBertCheckpoint.Write(temp.Path, BertConfig.Tiny(1, layers: 2, hiddenSize: 16, heads: 2, intermediateSize: 32, maxPositions: 32), seed: 5);
        return Path.Combine(temp.Path, "model.safetensors");
    }

    [Fact]
    public void Load_TinyCheckpoint_AllTensorsEqualTheWrittenOnes()
    {
        using var temp = new TempDirectory();
        var path = WriteSmall(temp);
        var written = TestSafeTensors.Read(path);
        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);

        var state = backbone.Model.state_dict();
        Assert.Equal(written.Keys.Order(), state.Keys.Order());
        foreach (var (name, tensor) in state)
        {
            Assert.Equal(written[name].Shape, tensor.shape);
            Assert.Equal(written[name].Data, tensor.data<float>().ToArray());
        }

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))), backbone.WeightsHash);
    }

    [Fact]
    public void Load_MissingTensor_ThrowsNamingTheTensor()
    {
        using var temp = new TempDirectory();
        var path = WriteSmall(temp);
        var tensors = TestSafeTensors.Read(path);
        Assert.True(tensors.Remove("encoder.layer.1.attention.self.key.weight"));
        TestSafeTensors.Write(path, tensors);

        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("t", temp.Path));
        Assert.Contains("encoder.layer.1.attention.self.key.weight", error.Message);
    }

    [Fact]
    public void Load_MisshapedTensor_ThrowsNamingTheTensor()
    {
        using var temp = new TempDirectory();
        var path = WriteSmall(temp);
        var tensors = TestSafeTensors.Read(path);
        tensors["encoder.layer.0.intermediate.dense.weight"] = ([31, 16], new float[31 * 16]);
        TestSafeTensors.Write(path, tensors);

        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("t", temp.Path));
        Assert.Contains("encoder.layer.0.intermediate.dense.weight", error.Message);
        Assert.Contains("[31, 16]", error.Message);
    }

    [Fact]
    public void Load_BertPrefixPoolerAndExtraKeys_AreTolerated()
    {
        using var temp = new TempDirectory();
        var path = WriteSmall(temp);
        var tensors = TestSafeTensors.Read(path);
        var prefixed = tensors.ToDictionary(p => "bert." + p.Key, p => p.Value);
        prefixed["bert.pooler.dense.weight"] = ([16, 16], new float[256]);
        prefixed["bert.pooler.dense.bias"] = ([16], new float[16]);
        prefixed["cls.predictions.bias"] = ([3], new float[3]);
        TestSafeTensors.Write(path, prefixed);

        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);
        var query = backbone.Model.state_dict()["encoder.layer.1.attention.self.query.weight"];
        Assert.Equal(tensors["encoder.layer.1.attention.self.query.weight"].Data, query.data<float>().ToArray());
    }

    [Fact]
    public void TinyCheckpoint_SameSeed_IsByteIdentical()
    {
        using var a = new TempDirectory();
        using var b = new TempDirectory();
        var pathA = WriteSmall(a);
        var pathB = WriteSmall(b);
        Assert.Equal(File.ReadAllBytes(pathA), File.ReadAllBytes(pathB));
    }
}
