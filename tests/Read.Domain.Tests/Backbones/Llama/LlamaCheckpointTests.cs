using Read.Domain.SideNetwork;
using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;

namespace Read.Domain.Tests.Backbones.Llama;

/// <summary>Llama-family checkpoints as users have them: single file or shards, F32/F16/BF16, and clear refusals.</summary>
public sealed class LlamaCheckpointTests
{
    private static Dictionary<string, float[]> Weights(Backbone backbone) =>
        backbone.Model.state_dict().ToDictionary(p => p.Key, p => p.Value.to_type(TorchSharp.torch.ScalarType.Float32).data<float>().ToArray());

    [Fact]
    public void Load_ShardedAndSingleFile_GiveIdenticalWeightsAndDistinctHashes()
    {
        using var temp = new TempDirectory();
        var single = temp.Sub("single");
        var sharded = temp.Sub("sharded");
        TinyLlamaCheckpoint.Write(single, new TinyLlamaCheckpoint.Options(), seed: 5);
        TinyLlamaCheckpoint.Write(sharded, new TinyLlamaCheckpoint.Options { Shards = 3 }, seed: 5);
        Assert.Equal(3, Directory.GetFiles(sharded, "model-*-of-00003.safetensors").Length);
        Assert.False(File.Exists(Path.Combine(sharded, HuggingFaceCheckpoint.WeightsFile)));

        using var a = HuggingFaceCheckpoint.Load("a", single);
        using var b = HuggingFaceCheckpoint.Load("b", sharded);
        var wa = Weights(a);
        var wb = Weights(b);
        Assert.Equal(wa.Keys.Order(), wb.Keys.Order());
        Assert.All(wa, p => Assert.True(p.Value.AsSpan().SequenceEqual(wb[p.Key]), $"{p.Key} differs"));
        Assert.NotEqual(a.WeightsHash, b.WeightsHash);
        Assert.Matches("^[0-9a-f]{64}$", b.WeightsHash);
        Assert.DoesNotContain(wa.Keys, k => k.StartsWith("lm_head", StringComparison.Ordinal)); // READ heads do not need it

        // The hash covers every shard: change one byte of the last shard's data and the hash moves.
        var last = Directory.GetFiles(sharded, "model-00003-of-00003.safetensors").Single();
        var bytes = File.ReadAllBytes(last);
        bytes[^1] ^= 1;
        File.WriteAllBytes(last, bytes);
        using var c = HuggingFaceCheckpoint.Load("c", sharded);
        Assert.NotEqual(b.WeightsHash, c.WeightsHash);
    }

    [Theory]
    [InlineData("F16")]
    [InlineData("BF16")]
    public void Load_HalfPrecisionStorage_WidensToTheStoredValues(string dtype)
    {
        using var temp = new TempDirectory();
        var fp32 = temp.Sub("fp32");
        var half = temp.Sub("half");
        TinyLlamaCheckpoint.Write(fp32, new TinyLlamaCheckpoint.Options(), seed: 9);
        TinyLlamaCheckpoint.Write(half, new TinyLlamaCheckpoint.Options { StorageDtype = dtype }, seed: 9);
        Assert.True(new FileInfo(Path.Combine(half, HuggingFaceCheckpoint.WeightsFile)).Length < new FileInfo(Path.Combine(fp32, HuggingFaceCheckpoint.WeightsFile)).Length * 0.6);
        using var reference = HuggingFaceCheckpoint.Load("fp32", fp32);
        using var loaded = HuggingFaceCheckpoint.Load("half", half);
        var expected = Weights(reference);
        // Each loaded value is the fp32 value rounded to the storage type, computed here independently with .NET's
        // Half and a bit-level bfloat16 round-to-nearest-even.
        foreach (var (name, values) in Weights(loaded))
        {
            var source = expected[name];
            for (var i = 0; i < values.Length; i++)
            {
                var rounded = dtype == "F16" ? (float)(Half)source[i] : RoundToBFloat16(source[i]);
                Assert.True(values[i] == rounded, $"{name}[{i}] = {values[i]}, expected {rounded} ({dtype} of {source[i]})");
            }
        }
    }

    private static float RoundToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        var lower = bits & 0xFFFF;
        var upper = bits >> 16;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1))
            upper++;
        return BitConverter.UInt32BitsToSingle(upper << 16);
    }

    [Fact]
    public void Load_BFloat16Compute_HoldsHalfTheParameterBytes()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 2);
        using var fp32 = HuggingFaceCheckpoint.Load("fp32", directory);
        using var bf16 = HuggingFaceCheckpoint.Load("bf16", directory, BackboneDtype.BFloat16);
        long Bytes(Backbone b) => b.Model.parameters().Sum(p => p.numel() * p.element_size());
        Assert.Equal(Bytes(fp32), 2 * Bytes(bf16));
        Assert.All(bf16.Model.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, p.dtype));
    }

    [Fact]
    public void Load_MissingTensor_NamesIt()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        var path = Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile);
        var tensors = SafeTensorsFile.Read(File.ReadAllBytes(path));
        tensors.Remove("model.layers.1.mlp.up_proj.weight");
        File.WriteAllBytes(path, SafeTensorsFile.Write(tensors));
        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("m", directory));
        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'", error.Message);
    }

    [Fact]
    public void Load_MisshapedTensor_NamesItAndBothShapes()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        var path = Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile);
        var tensors = SafeTensorsFile.Read(File.ReadAllBytes(path));
        tensors["model.layers.0.self_attn.k_proj.weight"] = new SafeTensor([64, 64], new float[64 * 64]); // GQA expects [32, 64]
        File.WriteAllBytes(path, SafeTensorsFile.Write(tensors));
        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("m", directory));
        Assert.Contains("'model.layers.0.self_attn.k_proj.weight' has shape [64, 64], expected [32, 64]", error.Message);
    }

    [Fact]
    public void Load_ShardIndexNamingAMissingShard_SaysWhich()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 1);
        File.Delete(Path.Combine(directory, "model-00002-of-00002.safetensors"));
        var error = Assert.Throws<FileNotFoundException>(() => HuggingFaceCheckpoint.Load("m", directory));
        Assert.Contains("model-00002-of-00002.safetensors", error.Message);
    }

    [Theory]
    [InlineData("yarn", "rope_scaling type 'yarn' is not supported")]
    [InlineData("dynamic", "rope_scaling type 'dynamic' is not supported")]
    public void Describe_UnsupportedRopeScaling_IsRefusedNamingIt(string type, string expected)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { RopeScaling = new JsonObject { ["rope_type"] = type, ["factor"] = 2.0 } }, seed: 1);
        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Describe(directory));
        Assert.Contains(expected, error.Message);
        Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Load("m", directory));
    }

    [Theory]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act 'gelu' is not supported")]
    [InlineData("num_key_value_heads", "3", "num_attention_heads 4 is not a multiple of num_key_value_heads 3")]
    [InlineData("quantization_config", "{\"quant_method\": \"gptq\"}", "quantized checkpoints")]
    [InlineData("model_type", "\"gpt_neox\"", "model_type 'gpt_neox' is not supported")]
    public void Describe_UnsupportedConfig_IsRefusedNamingTheField(string field, string json, string expected)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        var configPath = Path.Combine(directory, HuggingFaceCheckpoint.ConfigFile);
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config[field] = JsonNode.Parse(json);
        File.WriteAllText(configPath, config.ToJsonString());
        var error = Assert.Throws<InvalidDataException>(() => HuggingFaceCheckpoint.Describe(directory));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Registry_ListsALlamaCheckpointWithArchitectureShapeParametersAndDtype()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { ModelType = "qwen2", TieWordEmbeddings = true }, seed: 1);
        using var registry = new BackboneRegistry(new BackboneOptions
        {
            DataDirectory = temp.Sub("data"), GenerateTinyBackbone = false, ImportBundledBackbones = false,
            Checkpoints = { ["my-qwen"] = directory }, Dtypes = { ["my-qwen"] = "bf16" },
        });
        var info = Assert.Single(registry.List());
        Assert.Equal(("my-qwen", "qwen2", 2, 64, "bfloat16"), (info.Id, info.Architecture, info.Layers, info.HiddenSize, info.Dtype));
        Assert.Equal([Pooling.Mean, Pooling.Last], info.Poolings);
        var backbone = registry.Get("my-qwen");
        Assert.Equal(backbone.Model.parameters().Sum(p => p.numel()), info.Parameters);
        Assert.Equal(BackboneArchitecture.Llama, backbone.Architecture);
    }

    [Fact]
    public void Registry_UnknownDtype_IsRefusedAtRegistration()
    {
        var error = Assert.Throws<ArgumentException>(() => new BackboneRegistry(new BackboneOptions
        {
            Checkpoints = { ["m"] = "/nowhere" }, Dtypes = { ["m"] = "int4" },
        }));
        Assert.Contains("dtype 'int4' is not one of float32, bfloat16, float16", error.Message);
    }
}
