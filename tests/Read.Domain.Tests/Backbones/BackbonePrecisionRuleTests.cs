using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;

namespace Read.Domain.Tests.Backbones;

/// <summary>
/// The compute-dtype rule (issue 9 §2): storage dtype on CUDA; on a CPU bf16 only for bf16 weights on a CPU with native
/// bf16 (or when Read:Backbones:CpuBf16Compute forces it), float32 otherwise. The CPU's capability is always given
/// here, so the tests do not depend on the machine that runs them.
/// </summary>
public sealed class BackbonePrecisionRuleTests
{
    [Theory]
    [InlineData(BackboneDtype.Float32, false, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.Float32, true, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.BFloat16, false, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.BFloat16, true, BackboneDtype.BFloat16)]
    [InlineData(BackboneDtype.Float16, false, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.Float16, true, BackboneDtype.Float32)]
    public void OnTheCpu_Bf16ComputeOnlyForBf16WeightsOnANativeBf16Cpu(BackboneDtype storage, bool cpuComputesBf16, BackboneDtype expected) =>
        Assert.Equal(expected, BackbonePrecision.ComputeDtype(storage, ReadDevice.Cpu, cpuComputesBf16));

    [Theory]
    [InlineData(BackboneDtype.Float32)]
    [InlineData(BackboneDtype.BFloat16)]
    [InlineData(BackboneDtype.Float16)]
    public void OnCuda_TheStorageDtype(BackboneDtype storage)
    {
        var cuda = ReadDevice.Resolve("cuda", cudaDevices: 1);
        Assert.Equal(storage, BackbonePrecision.ComputeDtype(storage, cuda, cpuComputesBf16: false));
        Assert.Equal(storage, BackbonePrecision.ComputeDtype(storage, cuda, cpuComputesBf16: true));
    }

    [Theory]
    [InlineData("flags\t\t: fpu vme avx2 avx512f avx512_bf16 avx512_vnni\n", true)]
    [InlineData("flags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n", true)]
    [InlineData("flags\t\t: fpu vme avx2 avx512f avx512_vnni avx_vnni\n", false)]
    [InlineData("flags\t\t: fpu avx512_bf16x\nmodel name\t: avx512_bf16 in a name is not a flag\n", false)]
    [InlineData("processor\t: 0\nflags\t\t: avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: avx2 avx512_bf16\n", true)]
    [InlineData("processor\t: 0\nflags\t\t: avx2\n\nprocessor\t: 1\nflags\t\t: avx2 avx512_bf16\n", false)] // every core must have it
    [InlineData("", false)]
    [InlineData(null, false)]
    public void NativeBf16_IsReadFromTheFlagsLines(string? cpuInfo, bool expected) =>
        Assert.Equal(expected, BackbonePrecision.HasNativeBf16(cpuInfo));

    [Theory]
    [InlineData("bf16", true, BackboneDtype.BFloat16)]
    [InlineData("bf16", false, BackboneDtype.Float32)]
    [InlineData("fp16", true, BackboneDtype.Float32)]
    public void Registry_AppliesTheRuleWithCpuBf16Compute(string dtype, bool cpuBf16Compute, BackboneDtype expected)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        using var registry = Registry(temp, directory, dtype, cpuBf16Compute);
        var backbone = registry.Get("m");
        Assert.Equal((BackboneDtypes.Parse(dtype)!.Value, expected), (backbone.StorageDtype, backbone.ComputeDtype));
        Assert.All(backbone.Model.parameters(), p => Assert.Equal(backbone.StorageDtype.ToScalarType(), p.dtype));
    }

    [Fact]
    public void Registry_Bf16AndFp32Compute_OfTheSameWeights_HaveDifferentCacheKeys()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        using var bf16 = Registry(temp, directory, "bf16", cpuBf16Compute: true);
        using var fp32 = Registry(temp, directory, "bf16", cpuBf16Compute: false);
        var (a, b) = (bf16.Get("m"), fp32.Get("m"));
        var spec = new ActivationCacheSpec(32, Pooling.Last, [2], CacheDtype.Fp16, a.TokenizerSettings);
        Assert.Equal(a.WeightsHash, b.WeightsHash);
        Assert.NotEqual(ActivationCache.Key(a, "data", spec), ActivationCache.Key(b, "data", spec));
    }

    [Fact]
    public void Registry_SizesABackboneByItsResidentStorageBytes()
    {
        // A bf16-stored backbone whose fp32 weights would exceed the budget but whose bf16 weights fit loads resident:
        // what is resident is the storage dtype, whatever it computes in.
        using var temp = new TempDirectory();
        var directory = temp.Sub("m");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 1);
        var parameters = HuggingFaceCheckpoint.Describe(directory).Parameters;
        var budget = PrecomputeSelection.Headroom(2 * parameters) + 3 * parameters; // fits 2 bytes/parameter, not 4
        Assert.False(PrecomputeSelection.Fits(4 * parameters, budget));
        Assert.True(PrecomputeSelection.Fits(2 * parameters, budget));
        using var registry = new BackboneRegistry(new BackboneOptions
        {
            DataDirectory = temp.Sub("data"), GenerateTinyBackbone = false, ImportBundledBackbones = false,
            Checkpoints = { ["m"] = directory }, Dtypes = { ["m"] = "bf16" }, CpuBf16Compute = false,
        }, new TrainingOptions { MemoryBudgetBytes = budget });
        var backbone = registry.Get("m");
        Assert.True(backbone.IsResident);
        Assert.Equal(BackboneDtype.Float32, backbone.ComputeDtype);
        Assert.Equal(2 * parameters, backbone.WeightBytes);
    }

    private static BackboneRegistry Registry(TempDirectory temp, string directory, string dtype, bool cpuBf16Compute) => new(new BackboneOptions
    {
        DataDirectory = temp.Sub("data"), GenerateTinyBackbone = false, ImportBundledBackbones = false,
        Checkpoints = { ["m"] = directory }, Dtypes = { ["m"] = dtype }, CpuBf16Compute = cpuBf16Compute,
    });
}
