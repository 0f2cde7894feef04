using System.Diagnostics;
using System.Text.Json;

namespace Read.Domain.Tests.FineTuning;

/// <summary>
/// Peak resident memory of a layer-streamed READ job, measured in a child process (VmHWM from /proc/self/status, reset
/// after the checkpoint is written): the bench verb <c>streamed-precompute</c> on the <c>stream-test</c> shape, a random
/// Llama-family checkpoint written as F32 shards of 2.5 GB on disk, about 3.5 times the bound. F32 rather than BF16:
/// twice the bytes per layer for the same compute, so the checkpoint is several times the bound while the test stays
/// quick (one layer is 0.24 GB either way once loaded, as the compute dtype is float32).
/// </summary>
public sealed class StreamedPrecomputeMemoryTests
{
    // One fp32 layer is 0.24 GB and the embedding table 0.26 GB; the .NET runtime with libtorch loaded is ~0.2 GB. The
    // bound leaves room for one step's weights, its read chunks and one batch, and not for two layers at once.
    private const double BoundMb = 700;

    [Fact]
    public async Task StreamedJob_WeightsSeveralTimesTheBound_PeakRssStaysUnderIt()
    {
        using var temp = new TempDirectory();
        var result = Path.Combine(temp.Path, "result.json");
        var bench = BenchAssembly();
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                bench, "streamed-precompute", "--shape", "stream-test", "--examples", "16", "--max-length", "8", "--epochs", "1",
                "--storage", "F32", "--memory-budget-gb", "0.5", "--shard-gb", "0.3", "--data", temp.Sub("data"), "--no-report", "--result-json", result,
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEndAsync();
        var error = child.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        await child.WaitForExitAsync(timeout.Token);
        var log = await output + "\n" + await error;
        Assert.True(child.ExitCode == 0, $"exit {child.ExitCode}: {log}");

        using var summary = JsonDocument.Parse(File.ReadAllText(result));
        var root = summary.RootElement;
        var checkpointMb = root.GetProperty("CheckpointGb").GetDouble() * 1000; // the shards' bytes on disk
        var peakMb = root.GetProperty("PeakRssMb").GetDouble();
        Assert.False(root.GetProperty("Resident").GetBoolean()); // over its 0.5 GiB budget: registered streamed
        Assert.Equal(9, root.GetProperty("Layers").GetArrayLength()); // embeddings + 8 layers, one at a time
        Assert.True(checkpointMb >= 3 * BoundMb, $"the checkpoint ({checkpointMb:F0} MB on disk) is several times the bound");
        Assert.True(peakMb < BoundMb, $"peak RSS {peakMb:F0} MB, bound {BoundMb} MB (checkpoint {checkpointMb:F0} MB)\n{log}");
    }

    /// <summary>bench/Read.Bench's build output for this configuration (the test project references it for the build order).</summary>
    private static string BenchAssembly()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory);
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Read.sln")))
            root = root.Parent;
        Assert.NotNull(root);
        // .../tests/Read.Domain.Tests/bin/<Configuration>/<tfm>/
        var tfm = here.Name;
        var configuration = here.Parent!.Name;
        var path = Path.Combine(root.FullName, "bench", "Read.Bench", "bin", configuration, tfm, "read-bench.dll");
        Assert.True(File.Exists(path), $"{path} does not exist: build Read.sln (or bench/Read.Bench) in {configuration} first.");
        return path;
    }
}
