using System.Security.Cryptography;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using TorchSharp;
using TorchSharp.PyBridge;

namespace Read.Domain.Tests.Backbones;

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

    [Fact]
    public void Load_PyTorchBinInsteadOfSafetensors_GivesTheSameTensors()
    {
        using var temp = new TempDirectory();
        var safetensors = WriteSmall(temp);
        var written = TestSafeTensors.Read(safetensors);
        using (var source = HuggingFaceCheckpoint.Load("t", temp.Path))
            source.Model.save_py(Path.Combine(temp.Path, HuggingFaceCheckpoint.PyTorchWeightsFile));
        File.Delete(safetensors);

        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);

        foreach (var (name, tensor) in backbone.Model.state_dict())
            Assert.Equal(written[name].Data, tensor.data<float>().ToArray());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(temp.Path, "pytorch_model.bin")))), backbone.WeightsHash);
        Assert.Equal(backbone.Model.parameters().Sum(p => p.numel()), HuggingFaceCheckpoint.CountParameters(temp.Path));
    }

    [Fact]
    public void Load_PyTorchBinMissingTensor_ThrowsNamingTheTensor()
    {
        using var temp = new TempDirectory();
        var safetensors = WriteSmall(temp);
        using (var source = HuggingFaceCheckpoint.Load("t", temp.Path))
        {
            var state = new System.Collections.Hashtable();
            foreach (var (name, tensor) in source.Model.state_dict().Where(p => p.Key != "encoder.layer.0.output.dense.bias"))
                state[name] = tensor;
            using var file = File.Create(Path.Combine(temp.Path, HuggingFaceCheckpoint.PyTorchWeightsFile));
            TorchSharp.PyBridge.PyTorchPickler.PickleStateDict(file, state);
        }

        File.Delete(safetensors);
        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("t", temp.Path));
        Assert.Contains("encoder.layer.0.output.dense.bias", error.Message);
    }

    [Fact]
    public void Load_TokenizerJsonInsteadOfVocabTxt_EncodesTheSame()
    {
        using var temp = new TempDirectory();
        WriteSmall(temp);
        using var expected = HuggingFaceCheckpoint.Load("t", temp.Path);
        using var expectedBatch = expected.Encode(["good movie, zyx!"], ["bad"], 32);
        var vocab = File.ReadAllLines(Path.Combine(temp.Path, "vocab.txt"));
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["normalizer"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "BertNormalizer", ["lowercase"] = true },
            ["model"] = new System.Text.Json.Nodes.JsonObject
            {
                ["type"] = "WordPiece",
                ["unk_token"] = "[UNK]",
                ["vocab"] = new System.Text.Json.Nodes.JsonObject(vocab.Select((t, i) => KeyValuePair.Create(t, (System.Text.Json.Nodes.JsonNode?)i))),
            },
        };
        File.WriteAllText(Path.Combine(temp.Path, "tokenizer.json"), json.ToJsonString());
        File.Delete(Path.Combine(temp.Path, "vocab.txt"));

        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);
        using var batch = backbone.Encode(["good movie, zyx!"], ["bad"], 32);

        Assert.Equal(expectedBatch.InputIds.data<long>().ToArray(), batch.InputIds.data<long>().ToArray());
        Assert.Equal(expectedBatch.TokenTypeIds.data<long>().ToArray(), batch.TokenTypeIds.data<long>().ToArray());
    }

    [Fact]
    public void Load_BpeTokenizerJson_IsRejectedAsUnsupported()
    {
        using var temp = new TempDirectory();
        WriteSmall(temp);
        File.WriteAllText(Path.Combine(temp.Path, "tokenizer.json"), """{"model":{"type":"BPE","vocab":{},"merges":[]}}""");
        File.Delete(Path.Combine(temp.Path, "vocab.txt"));
        var error = Assert.Throws<NotSupportedException>(() => HuggingFaceCheckpoint.Load("t", temp.Path));
        Assert.Contains("BPE", error.Message);
    }
}
