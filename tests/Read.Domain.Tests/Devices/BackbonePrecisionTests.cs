using Read.Domain.SideNetwork;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
using Read.Domain.FineTuning;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Devices;

/// <summary>Frozen BERT weights kept in bf16/fp16 (issue 9 §2), checked against an fp32 model of pre-rounded weights.</summary>
public sealed class BackbonePrecisionTests
{
    [Theory]
    [InlineData(BackboneDtype.BFloat16)]
    [InlineData(BackboneDtype.Float16)]
    public void HalfStoredWeights_Fp32Compute_EqualAnFp32ModelOfTheRoundedWeights(BackboneDtype stored)
    {
        using var temp = new TempDirectory();
        var original = temp.Sub("fp32");
        TinyBertCheckpoint.Write(original, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        // Independent reference: the same checkpoint with every weight rounded here (round to nearest even), run in fp32.
        var rounded = temp.Sub("rounded");
        Directory.CreateDirectory(rounded);
        foreach (var file in Directory.GetFiles(original))
            File.Copy(file, Path.Combine(rounded, Path.GetFileName(file)));
        var tensors = TestSafeTensors.Read(Path.Combine(original, HuggingFaceCheckpoint.WeightsFile));
        TestSafeTensors.Write(Path.Combine(rounded, HuggingFaceCheckpoint.WeightsFile),
            tensors.ToDictionary(p => p.Key, p => (p.Value.Shape, p.Value.Data.Select(v => Round(v, stored)).ToArray())));

        // On a CPU without native bf16 (forced, so the test means the same on every machine): fp32 compute.
        using var half = HuggingFaceCheckpoint.Load("half", original, stored, compute: BackbonePrecision.ComputeDtype(stored, ReadDevice.Cpu, cpuComputesBf16: false));
        using var reference = HuggingFaceCheckpoint.Load("reference", rounded);
        using var plain = HuggingFaceCheckpoint.Load("plain", original);
        Assert.Equal(stored, half.StorageDtype);
        Assert.Equal(BackboneDtype.Float32, half.ComputeDtype);
        Assert.All(half.Model.parameters(), p => Assert.Equal(stored.ToScalarType(), p.dtype));

        string[] texts = ["the movie was really good", "a phone was awful", "this food is quite great and the story was bad"];
        using var a = half.Encode(texts, null, 32);
        using var b = reference.Encode(texts, null, 32);
        using var c = plain.Encode(texts, null, 32);
        var got = half.HiddenStates(a);
        var want = reference.HiddenStates(b);
        var fp32 = plain.HiddenStates(c);
        double maxRoundingEffect = 0;
        for (var i = 0; i < got.Length; i++)
        {
            Assert.Equal(ScalarType.Float32, got[i].dtype);
            // Same fp32 arithmetic on the same (widened) weights: equal up to kernel reassociation.
            Assert.True(got[i].allclose(want[i], rtol: 0, atol: 1e-5), $"layer {i}: max |Δ| {(got[i] - want[i]).abs().max().item<float>()}");
            maxRoundingEffect = Math.Max(maxRoundingEffect, (got[i] - fp32[i]).abs().max().item<float>());
        }

        // And the rounding is really there (the test could not pass with fp32 weights under another name).
        Assert.True(maxRoundingEffect > 1e-5, $"max |Δ| vs fp32 {maxRoundingEffect}");
    }

    [Fact]
    public void ReducedPrecisionBackbone_GetsItsOwnActivationCacheKey()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny");
        TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        using var fp32 = HuggingFaceCheckpoint.Load("tiny", directory);
        using var bf16 = HuggingFaceCheckpoint.Load("tiny", directory, BackboneDtype.BFloat16);
        var spec = new ActivationCacheSpec(32, Pooling.Cls, [4], CacheDtype.Fp16, fp32.TokenizerSettings);
        Assert.Equal(fp32.WeightsHash, bf16.WeightsHash);
        Assert.Equal("", fp32.PrecisionTag);
        Assert.NotEqual(ActivationCache.Key(fp32, "data", spec), ActivationCache.Key(bf16, "data", spec));
    }

    [Theory]
    [InlineData("bert", BackboneDtype.Float16)]
    [InlineData("llama", BackboneDtype.BFloat16)]
    public void LayerStreamedBackbone_HasTheResidentOnesPrecisionAndCacheKey(string architecture, BackboneDtype dtype)
    {
        // A streamed backbone computes its states at the precision it was registered with, so its cache key must say so:
        // the same as the resident backbone's at that precision, and not the float32 one's.
        using var temp = new TempDirectory();
        var directory = temp.Sub(architecture);
        if (architecture == "bert")
            TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        else
            TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 11);
        using var resident = HuggingFaceCheckpoint.Load("tiny", directory, dtype);
        using var streamed = HuggingFaceCheckpoint.LoadStreamed("tiny", directory, dtype);
        using var fp32 = HuggingFaceCheckpoint.LoadStreamed("tiny", directory);
        var spec = new ActivationCacheSpec(32, architecture == "bert" ? Pooling.Cls : Pooling.Last, [2], CacheDtype.Fp16, resident.TokenizerSettings);
        Assert.False(streamed.IsResident);
        Assert.Equal((resident.StorageDtype, resident.ComputeDtype), (streamed.StorageDtype, streamed.ComputeDtype));
        Assert.Equal(ActivationCache.Key(resident, "data", spec), ActivationCache.Key(streamed, "data", spec));
        Assert.NotEqual(ActivationCache.Key(fp32, "data", spec), ActivationCache.Key(streamed, "data", spec));
    }

    private static float Round(float value, BackboneDtype dtype)
    {
        if (dtype == BackboneDtype.Float16)
            return (float)(Half)value; // .NET's IEEE binary16 conversion rounds to nearest even
        var bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000);
    }
}
