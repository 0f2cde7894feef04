using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Backbones.Llama;

/// <summary>
/// Decoders keep their weights in the configured dtype and compute in the device policy's dtype
/// (<see cref="BackbonePrecision.ComputeDtype(BackboneDtype, ReadDevice, bool)"/>), checked against an fp32 model of
/// the same weights rounded here, independently of the loader.
/// </summary>
public sealed class LlamaPrecisionTests(ITestOutputHelper output)
{
    private static readonly string[] Texts = ["the movie was really good", "a phone", "this food is quite great and the story was bad"];

    [Theory]
    [InlineData(BackboneDtype.BFloat16, false)]
    [InlineData(BackboneDtype.Float16, false)]
    [InlineData(BackboneDtype.Float16, true)] // fp16 weights compute in fp32 on any CPU
    public void HalfStoredWeights_Fp32Compute_EqualAnFp32ModelOfTheRoundedWeights(BackboneDtype stored, bool cpuComputesBf16)
    {
        using var temp = new TempDirectory();
        var (original, rounded) = WriteWithRoundedCopy(temp, stored);
        var compute = BackbonePrecision.ComputeDtype(stored, ReadDevice.Cpu, cpuComputesBf16);
        Assert.Equal(BackboneDtype.Float32, compute);

        using var half = HuggingFaceCheckpoint.Load("half", original, stored, compute: compute);
        using var reference = HuggingFaceCheckpoint.Load("reference", rounded);
        using var plain = HuggingFaceCheckpoint.Load("plain", original);
        Assert.Equal((stored, BackboneDtype.Float32), (half.StorageDtype, half.ComputeDtype));
        Assert.All(half.Model.parameters(), p => Assert.Equal(stored.ToScalarType(), p.dtype));

        var (toReference, toFp32) = Compare(half, reference, plain);
        output.WriteLine($"{stored}: max |Δ| vs the fp32 model of rounded weights {toReference:E2}, vs the fp32 weights {toFp32:E2}");
        // Same fp32 arithmetic on the same (widened) weights: equal up to kernel reassociation.
        Assert.True(toReference <= 1e-5, $"max |Δ| vs the rounded-weights model {toReference}");
        // And the rounding is really there (the test could not pass with fp32 weights under another name).
        Assert.True(toFp32 > 1e-4, $"max |Δ| vs fp32 {toFp32}");
    }

    [Fact]
    public void Bf16StoredWeights_OnACpuWithNativeBf16_ComputeInBf16()
    {
        using var temp = new TempDirectory();
        var (original, rounded) = WriteWithRoundedCopy(temp, BackboneDtype.BFloat16);
        var compute = BackbonePrecision.ComputeDtype(BackboneDtype.BFloat16, ReadDevice.Cpu, cpuComputesBf16: true);
        Assert.Equal(BackboneDtype.BFloat16, compute);

        using var bf16 = HuggingFaceCheckpoint.Load("bf16", original, BackboneDtype.BFloat16, compute: compute);
        using var widened = HuggingFaceCheckpoint.Load("widened", original, BackboneDtype.BFloat16, compute: BackboneDtype.Float32);
        using var reference = HuggingFaceCheckpoint.Load("reference", rounded);
        Assert.Equal(BackboneDtype.BFloat16, bf16.ComputeDtype);

        var (toReference, _) = Compare(bf16, reference, reference);
        var (widenedToReference, _) = Compare(widened, reference, reference);
        output.WriteLine($"bf16 compute: max |Δ| vs the fp32 model of the same weights {toReference:E2} (fp32 compute: {widenedToReference:E2})");
        // bf16 activations (8 significant bits, ~4e-3 relative per rounding) over two layers of states of magnitude ~1-3.
        Assert.True(toReference <= 0.1, $"bf16 compute is {toReference} away from fp32 arithmetic");
        // Really computed in bf16: far from what fp32 arithmetic on the same weights gives.
        Assert.True(toReference > 100 * Math.Max(widenedToReference, 1e-7), $"bf16 compute {toReference}, fp32 compute {widenedToReference}");
        // And the cache can never mix the two.
        var spec = new ActivationCacheSpec(32, Pooling.Last, [2], CacheDtype.Fp16, bf16.TokenizerSettings);
        Assert.NotEqual(ActivationCache.Key(bf16, "data", spec), ActivationCache.Key(widened, "data", spec));
    }

    [Theory]
    [InlineData(BackboneDtype.BFloat16, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.Float16, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.BFloat16, BackboneDtype.BFloat16)]
    public void LayerStream_OfAnFp32Checkpoint_GivesTheResidentModelsStates(BackboneDtype stored, BackboneDtype compute)
    {
        // The streamed layer is held in the compute dtype; it must still see the weights rounded to the storage dtype,
        // or the streamed and resident caches (one key) would hold different states.
        using var temp = new TempDirectory();
        var (original, _) = WriteWithRoundedCopy(temp, stored);
        using var backbone = HuggingFaceCheckpoint.Load("m", original, stored, compute: compute);
        using var batch = backbone.Encode(Texts, null, 32);
        var resident = backbone.HiddenStates(batch);
        using var stream = backbone.OpenLayerStream();
        Assert.Equal(compute.ToScalarType(), stream.ComputeDtype);
        Tensor? previous = null;
        double worst = 0;
        for (var step = 0; step <= stream.Layers; step++)
        {
            stream.Load(step);
            var state = stream.Run(step, previous, batch);
            Assert.Equal(compute.ToScalarType(), state.dtype);
            previous?.Dispose();
            previous = state;
            using var widened = state.to_type(ScalarType.Float32);
            worst = Math.Max(worst, (widened - resident[step]).abs().max().item<float>());
        }

        previous?.Dispose();
        output.WriteLine($"{stored}/{compute}: streamed vs resident max |Δ| {worst:E2}");
        Assert.True(worst <= 1e-5, $"streamed states differ from the resident model's by {worst}");
    }

    /// <summary>A 2-layer F32 checkpoint and a copy whose every weight is rounded to <paramref name="dtype"/> here (round to nearest even).</summary>
    private static (string Original, string Rounded) WriteWithRoundedCopy(TempDirectory temp, BackboneDtype dtype)
    {
        var original = temp.Sub("fp32");
        TinyLlamaCheckpoint.Write(original, new TinyLlamaCheckpoint.Options { ModelType = "qwen2" }, seed: 5); // biases too
        var rounded = temp.Sub("rounded");
        Directory.CreateDirectory(rounded);
        foreach (var file in Directory.GetFiles(original))
            File.Copy(file, Path.Combine(rounded, Path.GetFileName(file)));
        var tensors = TestSafeTensors.Read(Path.Combine(original, HuggingFaceCheckpoint.WeightsFile));
        TestSafeTensors.Write(Path.Combine(rounded, HuggingFaceCheckpoint.WeightsFile),
            tensors.ToDictionary(p => p.Key, p => (p.Value.Shape, p.Value.Data.Select(v => Round(v, dtype)).ToArray())));
        return (original, rounded);
    }

    /// <summary>Max |Δ| of every hidden state (real tokens only) of <paramref name="model"/> against two others.</summary>
    private static (double ToFirst, double ToSecond) Compare(Backbone model, Backbone first, Backbone second)
    {
        using var scope = NewDisposeScope();
        using var batch = model.Encode(Texts, null, 32);
        var mask = batch.AttentionMask.to_type(ScalarType.Float32).unsqueeze(-1);
        var got = model.HiddenStates(batch);
        var a = first.HiddenStates(first.Encode(Texts, null, 32));
        var b = second.HiddenStates(second.Encode(Texts, null, 32));
        double toFirst = 0, toSecond = 0;
        for (var i = 0; i < got.Length; i++)
        {
            Assert.Equal(ScalarType.Float32, got[i].dtype);
            toFirst = Math.Max(toFirst, ((got[i] - a[i]).abs() * mask).max().item<float>());
            toSecond = Math.Max(toSecond, ((got[i] - b[i]).abs() * mask).max().item<float>());
        }

        return (toFirst, toSecond);
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
