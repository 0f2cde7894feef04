using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>
/// Where the backbone, the activation-cache batches, the side network, its optimiser state and inference run
/// (<c>Read:Device</c>): <c>auto</c> (CUDA device 0 when TorchSharp reports CUDA, else the CPU), <c>cpu</c>,
/// <c>cuda</c> (device 0) or <c>cuda:N</c>. A worker on a multi-GPU host is pinned to one GPU with
/// <c>Read__Device=cuda:N</c>. See docs/decisions/012-devices-and-precision.md.
/// </summary>
public sealed class ReadDevice
{
    public const string Auto = "auto";

    private ReadDevice(string name, DeviceType type, int index)
    {
        Name = name;
        Type = type;
        Index = index;
        Torch = type == DeviceType.CUDA ? new Device(DeviceType.CUDA, index) : torch.CPU;
    }

    /// <summary>The CPU: what a deployment without CUDA, and every test here, runs on.</summary>
    public static ReadDevice Cpu { get; } = new("cpu", DeviceType.CPU, -1);

    /// <summary>cpu or cuda:N (resolved: never auto).</summary>
    public string Name { get; }

    public DeviceType Type { get; }

    /// <summary>CUDA ordinal; -1 on the CPU.</summary>
    public int Index { get; }

    public bool IsCuda => Type == DeviceType.CUDA;

    /// <summary>The TorchSharp device every tensor and module on the service path is placed on.</summary>
    public Device Torch { get; }

    public override string ToString() => Name;

    /// <summary>Whether <paramref name="tensor"/> lives on this device (TorchSharp's Device compares by reference).</summary>
    public bool Holds(Tensor tensor) =>
        tensor.device_type == Type && (Type != DeviceType.CUDA || tensor.device_index == Index);

    /// <summary>
    /// Resolves a <c>Read:Device</c> value against what TorchSharp reports; <paramref name="cudaDevices"/> overrides
    /// the CUDA device count (tests). Throws <see cref="ArgumentException"/> naming the setting and the fix.
    /// </summary>
    public static ReadDevice Resolve(string? text, int? cudaDevices = null)
    {
        if (!TryResolve(text, out var device, out var error, cudaDevices))
            throw new ArgumentException(error, nameof(text));
        return device!;
    }

    public static bool TryResolve(string? text, out ReadDevice? device, out string? error, int? cudaDevices = null)
    {
        device = null;
        error = null;
        var value = (text ?? Auto).Trim().ToLowerInvariant();
        var available = cudaDevices ?? CudaDeviceCount();
        if (value is "" or Auto)
        {
            device = available > 0 ? new ReadDevice("cuda:0", DeviceType.CUDA, 0) : Cpu;
            return true;
        }

        if (value == "cpu")
        {
            device = Cpu;
            return true;
        }

        int index;
        if (value == "cuda")
            index = 0;
        else if (!value.StartsWith("cuda:", StringComparison.Ordinal)
                 || !int.TryParse(value.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out index))
        {
            error = $"Read:Device '{text}' is not one of auto, cpu, cuda, cuda:N.";
            return false;
        }

        if (available == 0)
        {
            error = $"Read:Device is '{text}' but TorchSharp reports no CUDA device: build with -p:ReadTorchBackend=cuda " +
                    "(Dockerfile.gpu), run on a host with an NVIDIA GPU and driver, or set Read:Device to auto or cpu.";
            return false;
        }

        if (index >= available)
        {
            error = $"Read:Device is '{text}' but TorchSharp reports {available} CUDA device(s) (cuda:0..cuda:{available - 1}).";
            return false;
        }

        device = new ReadDevice($"cuda:{index}", DeviceType.CUDA, index);
        return true;
    }

    /// <summary>CUDA devices TorchSharp sees; 0 with the CPU-only libtorch this repository builds by default.</summary>
    public static int CudaDeviceCount()
    {
        try
        {
            return torch.cuda.is_available() ? torch.cuda.device_count() : 0;
        }
        catch (Exception e) when (e is DllNotFoundException or NotSupportedException or InvalidOperationException)
        {
            return 0;
        }
    }
}
