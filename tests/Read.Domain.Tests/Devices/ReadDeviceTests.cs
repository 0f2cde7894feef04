using Read.Domain.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Devices;

public sealed class ReadDeviceTests
{
    [Theory]
    [InlineData("auto", 0, "cpu")]
    [InlineData(null, 0, "cpu")]
    [InlineData("auto", 2, "cuda:0")]
    [InlineData("cpu", 2, "cpu")]
    [InlineData("CPU", 0, "cpu")]
    [InlineData("cuda", 1, "cuda:0")]
    [InlineData("cuda:1", 2, "cuda:1")]
    public void Resolve_AcceptedValues_GiveTheDevice(string? text, int cudaDevices, string expected)
    {
        var device = ReadDevice.Resolve(text, cudaDevices);
        Assert.Equal(expected, device.Name);
        Assert.Equal(expected != "cpu", device.IsCuda);
        Assert.Equal(device.IsCuda ? DeviceType.CUDA : DeviceType.CPU, device.Torch.type);
    }

    [Theory]
    [InlineData("gpu", 1, "not one of auto, cpu, cuda, cuda:N")]
    [InlineData("cuda:x", 1, "not one of auto, cpu, cuda, cuda:N")]
    [InlineData("cuda:-1", 1, "not one of auto, cpu, cuda, cuda:N")]
    [InlineData("cuda", 0, "reports no CUDA device")]
    [InlineData("cuda:0", 0, "-p:ReadTorchBackend=cuda")]
    [InlineData("cuda:2", 2, "reports 2 CUDA device(s) (cuda:0..cuda:1)")]
    public void Resolve_UnusableValues_FailNamingTheSettingAndTheReason(string text, int cudaDevices, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => ReadDevice.Resolve(text, cudaDevices));
        Assert.Contains("Read:Device", e.Message);
        Assert.Contains(reason, e.Message);
    }

    [Fact]
    public void CpuBuild_ReportsNoCuda_SoAutoIsTheCpu()
    {
        // This repository's default build links libtorch-cpu (ReadTorchBackend=cpu).
        Assert.Equal(0, ReadDevice.CudaDeviceCount());
        Assert.Equal("cpu", ReadDevice.Resolve("auto").Name);
    }
}
