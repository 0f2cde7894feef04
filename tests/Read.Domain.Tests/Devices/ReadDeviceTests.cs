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
    public void Auto_IsCuda0ExactlyWhenTorchSharpReportsCuda()
    {
        // True on either build: this repository's default links libtorch-cpu (no CUDA, so auto is the CPU); a
        // -p:ReadTorchBackend=cuda build on a GPU host resolves auto to cuda:0. TorchSharp itself is the reference.
        var available = torch.cuda.is_available();
        var auto = ReadDevice.Resolve("auto");
        Assert.Equal(available ? "cuda:0" : "cpu", auto.Name);
        Assert.Equal(available, auto.IsCuda);
        Assert.Equal(available ? torch.cuda.device_count() : 0, ReadDevice.CudaDeviceCount());
    }
}
