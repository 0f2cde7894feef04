using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Read.Domain.Tests.Devices;

/// <summary>
/// The GPU deployment files, checked without Docker or a GPU: the command scripts/gpu-check.sh starts for an image
/// (its --dry-run prints it), and the services of docker-compose.gpu.yml against the CPU worker's in docker-compose.yml.
/// </summary>
public sealed partial class GpuDeploymentFilesTests
{
    private static readonly string Root = FindRoot();

    [Fact]
    public void GpuCheck_InTheGpuImage_StartsTheBenchNotTheImagesWorkerEntrypoint()
    {
        // Dockerfile.gpu's entrypoint is the worker: arguments after the image would go to the worker, not run the bench.
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile.gpu"));
        Assert.Contains("ENTRYPOINT [\"dotnet\", \"Read.Worker.dll\"]", dockerfile);
        Assert.Contains("COPY --from=build /out/bench /bench", dockerfile);

        var command = RunScript(new Dictionary<string, string> { ["READ_GPU_IMAGE"] = "read-worker-gpu" }, "--dry-run", "--require-cuda", "--device", "cuda:1");

        Assert.Equal("docker run --rm --gpus all --entrypoint dotnet read-worker-gpu /bench/read-bench.dll gpu-check --require-cuda --device cuda:1", command);
    }

    [Fact]
    public void GpuCheck_Here_RunsTheBenchVerbThroughDotnet()
    {
        Assert.Equal("dotnet run -c Release --no-build --project bench/Read.Bench -- gpu-check --backbone tiny-bert",
            RunScript(new Dictionary<string, string> { ["READ_NO_BUILD"] = "1" }, "--dry-run", "--backbone", "tiny-bert"));
        Assert.Contains("--entrypoint dotnet", RunScript([], "--help")); // the usage names the image's path
    }

    [Fact]
    public void GpuCompose_EveryGpuWorker_MountsTheCpuWorkersSharedCache()
    {
        // docs/decisions/014: one activation-cache volume for every worker, so a job resumed elsewhere reuses the backbone pass.
        var cpuWorker = Services(File.ReadAllLines(Path.Combine(Root, "docker-compose.yml")))["worker"];
        var cacheDirectory = Assert.Single(cpuWorker, l => l.StartsWith("Read__Training__CacheDirectory:", StringComparison.Ordinal));
        var directory = cacheDirectory.Split(':', 2)[1].Trim();
        var volume = Assert.Single(cpuWorker, l => l.EndsWith(":" + directory, StringComparison.Ordinal) && l.StartsWith("- ", StringComparison.Ordinal));

        var gpuWorkers = Services(File.ReadAllLines(Path.Combine(Root, "docker-compose.gpu.yml")))
            .Where(s => s.Value.Any(l => l.StartsWith("Read__Device:", StringComparison.Ordinal) && l.Contains("cuda", StringComparison.Ordinal)))
            .ToList();

        Assert.True(gpuWorkers.Count >= 2, "docker-compose.gpu.yml has a worker per GPU");
        foreach (var (name, lines) in gpuWorkers)
        {
            Assert.True(lines.Contains(cacheDirectory), $"{name} sets {cacheDirectory}");
            Assert.True(lines.Contains(volume), $"{name} mounts {volume}");
        }
    }

    /// <summary>Each service's lines (trimmed) under <c>services:</c>, by name: enough YAML for these files.</summary>
    private static Dictionary<string, List<string>> Services(string[] lines)
    {
        var services = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        var inServices = false;
        foreach (var line in lines)
        {
            if (line.Length > 0 && !char.IsWhiteSpace(line[0]) && !line.StartsWith('#'))
            {
                inServices = line.TrimEnd() == "services:";
                current = null;
                continue;
            }

            if (!inServices)
                continue;
            if (ServiceName().Match(line) is { Success: true } name)
                services[name.Groups[1].Value] = current = [];
            else if (current is not null && line.Trim() is { Length: > 0 } content && !content.StartsWith('#'))
                current.Add(content);
        }

        return services;
    }

    [GeneratedRegex(@"^  ([A-Za-z0-9_-]+):\s*$")]
    private static partial Regex ServiceName();

    /// <summary>scripts/gpu-check.sh's standard output with <paramref name="environment"/> set; it must exit 0.</summary>
    private static string RunScript(Dictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Root };
        start.ArgumentList.Add(Path.Combine(Root, "scripts", "gpu-check.sh"));
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);
        foreach (var variable in new[] { "READ_GPU_IMAGE", "READ_NO_BUILD", "READ_TORCH_BACKEND" })
            start.Environment.Remove(variable);
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        using var script = Process.Start(start)!;
        var output = script.StandardOutput.ReadToEndAsync();
        var error = script.StandardError.ReadToEnd();
        script.WaitForExit();
        Assert.True(script.ExitCode == 0, $"exit {script.ExitCode}: {error}");
        return output.Result.Trim();
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Read.sln")))
            directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("No Read.sln above " + AppContext.BaseDirectory);
    }
}
