using Read.Domain.SideNetwork;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Read.Bench.Measurement;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using TorchSharp;

namespace Read.Bench.Devices;

/// <summary>
/// `read-bench gpu-check` (scripts/gpu-check.sh): one end-to-end READ job — precompute, train, evaluate, predict — on
/// the Read:Device this process resolves, through the same registry and trainer the worker uses. Prints the device,
/// precompute tokens/s, seconds per epoch and peak GPU memory (the device's memory.used from nvidia-smi, sampled, with
/// its value before the job: TorchSharp 0.107 has no torch.cuda.max_memory_allocated), and peak RSS. Needs no network:
/// the data is generated.
/// </summary>
internal static class GpuCheckCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "Read:Device (auto, cpu, cuda, cuda:N).", DefaultValueFactory = _ => "auto" };
        var backboneId = new Option<string>("--backbone") { Description = "tiny-bert (generated) or a bundled backbone.", DefaultValueFactory = _ => BackboneRegistry.DefaultBackboneId };
        var data = new Option<string>("--data") { Description = "Data directory (backbones, caches).", DefaultValueFactory = _ => "data" };
        var examples = new Option<int>("--examples") { Description = "Generated training examples (a fifth more for validation).", DefaultValueFactory = _ => 2000 };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 };
        var requireCuda = new Option<bool>("--require-cuda") { Description = "Exit 2 unless the job ran on a CUDA device." };
        var command = new Command("gpu-check", "Smoke-test the device path: one READ job end to end; device, precompute tokens/s, epoch s, peak GPU memory.")
        {
            device, backboneId, data, examples, epochs, requireCuda,
        };
        command.SetAction(parse =>
        {
            var resolved = ReadDevice.Resolve(parse.GetValue(device));
            Console.WriteLine($"Read:Device {parse.GetValue(device)} -> {resolved} (TorchSharp CUDA devices: {ReadDevice.CudaDeviceCount()})");
            if (parse.GetValue(requireCuda) && !resolved.IsCuda)
            {
                Console.Error.WriteLine("gpu-check: --require-cuda given but the device is the CPU (CPU-only libtorch, or no GPU visible).");
                return 2;
            }

            using var gpu = resolved.IsCuda ? new GpuMemorySampler(resolved.Index) : null;
            if (gpu is not null)
                Console.WriteLine($"sampling memory.used of nvidia-smi GPU {gpu.Gpu}: {gpu.Description}; {gpu.BaselineMb:N0} MB in use before the job");
            using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = parse.GetValue(data)! }, device: resolved);
            var backbone = registry.Get(parse.GetValue(backboneId)!);
            Console.WriteLine($"backbone {backbone.Id} on {backbone.Device}: weights {backbone.StorageDtype.Name()}, compute {backbone.ComputeDtype.Name()}");
            var n = parse.GetValue(examples);
            var train = Generate(n, seed: 1);
            var validation = Generate(Math.Max(10, n / 5), seed: 2);
            var hp = new ReadHyperparameters { Epochs = parse.GetValue(epochs), Pooling = Pooling.Mean, MaxLength = 64, Seed = 0 };
            var tokens = train.Concat(validation).Chunk(256).Sum(chunk =>
            {
                using var encoded = backbone.Encode(chunk.Select(e => e.Text).ToList(), null, hp.MaxLength);
                using var sum = encoded.AttentionMask.sum();
                return sum.cpu().item<long>();
            });
            var cache = Path.Combine(parse.GetValue(data)!, "bench-cache", "gpu-check-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture));
            var progress = new EpochTimes();
            var result = new ReadFineTuner().Run(backbone, train, validation, hp, cache, progress, CancellationToken.None);
            using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
            var clock = Stopwatch.StartNew();
            var predictions = AdapterPredictor.Predict(backbone, adapter, validation.Take(256).Select(e => e.Text).ToList(), null);
            var predictSeconds = clock.Elapsed.TotalSeconds;
            var agree = predictions.Zip(validation).Count(p => p.First.Label == p.Second.Label) / (double)predictions.Count;

            var m = result.Metrics;
            Console.WriteLine();
            Console.WriteLine($"{"measure",-34} {"value",14}");
            Console.WriteLine($"{"device",-34} {backbone.Device,14}");
            Console.WriteLine($"{"examples (train + validation)",-34} {m.TrainExamples + m.ValidationExamples,14}");
            Console.WriteLine($"{"precompute tokens",-34} {tokens,14:N0}");
            Console.WriteLine($"{"precompute s",-34} {m.PrecomputeSeconds,14:F2}");
            Console.WriteLine($"{"precompute tokens/s",-34} {tokens / m.PrecomputeSeconds,14:N0}");
            Console.WriteLine($"{"epoch s (median)",-34} {progress.Median,14:F3}");
            Console.WriteLine($"{"validation accuracy",-34} {m.ValidationAccuracy,14:F3}");
            Console.WriteLine($"{"predict 256 inputs s",-34} {predictSeconds,14:F3}");
            Console.WriteLine($"{"predict accuracy (same inputs)",-34} {agree,14:F3}");
            Console.WriteLine($"{"peak GPU memory.used MB (device)",-34} {(gpu is null ? "n/a (cpu)" : gpu.PeakMb.ToString("N0", CultureInfo.InvariantCulture)),14}");
            Console.WriteLine($"{"  of which above the start",-34} {(gpu is null ? "n/a (cpu)" : (gpu.PeakMb - gpu.BaselineMb).ToString("N0", CultureInfo.InvariantCulture)),14}");
            Console.WriteLine($"{"peak RSS MB",-34} {ProcessStats.PeakRssMb(),14:N0}");
            return 0;
        });
        return command;
    }

    /// <summary>A learnable two-class set: the label is carried by a sentiment word inside filler text.</summary>
    private static List<LabeledExample> Generate(int count, int seed)
    {
        string[] positive = ["good", "great", "excellent", "wonderful"], negative = ["bad", "awful", "terrible", "poor"];
        string[] nouns = ["movie", "film", "book", "phone", "food", "service", "story", "product", "hotel", "camera"];
        string[] fillers = ["the", "this", "a", "really", "very", "so", "was", "is", "and", "it", "quite", "honestly", "overall"];
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var isPositive = i % 2 == 0;
            var words = Enumerable.Range(0, 4 + random.Next(20)).Select(_ => fillers[random.Next(fillers.Length)]).ToList();
            words.Insert(random.Next(words.Count), nouns[random.Next(nouns.Length)]);
            words.Insert(random.Next(words.Count), isPositive ? positive[random.Next(4)] : negative[random.Next(4)]);
            return new LabeledExample(string.Join(' ', words), null, isPositive ? "positive" : "negative");
        }).ToList();
    }

    private sealed class EpochTimes : IFineTuneProgress
    {
        private readonly List<double> seconds = [];

        public double Median => seconds.Count == 0 ? double.NaN : seconds.Order().ElementAt(seconds.Count / 2);

        public void StageStarted(FineTuneStage stage)
        {
        }

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics metrics) => seconds.Add(metrics.Seconds);
    }

    /// <summary>
    /// Polls nvidia-smi every 200 ms for memory.used of the GPU behind CUDA ordinal <c>N</c> and keeps the peak. The whole
    /// device's figure, not this process's: in a container nvidia-smi lists host PIDs, so matching our own PID finds
    /// nothing. <see cref="BaselineMb"/> (before the backbone is loaded) is printed beside it, and the difference is the
    /// job's when nothing else runs on the GPU. The GPU is found as CUDA numbers it: the N-th entry of
    /// CUDA_VISIBLE_DEVICES when set (an index or a UUID, both of which <c>nvidia-smi -i</c> takes), else N, which is
    /// nvidia-smi's index under CUDA_DEVICE_ORDER=PCI_BUS_ID (set by scripts/gpu-check.sh and Dockerfile.gpu).
    /// </summary>
    private sealed class GpuMemorySampler : IDisposable
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task loop;
        private double peak;

        public GpuMemorySampler(int ordinal)
        {
            var visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
            var entries = string.IsNullOrWhiteSpace(visible) ? [] : visible.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            Gpu = ordinal < entries.Length ? entries[ordinal] : ordinal.ToString(CultureInfo.InvariantCulture);
            var order = Environment.GetEnvironmentVariable("CUDA_DEVICE_ORDER");
            Description = (Query("index,name,uuid") ?? "nvidia-smi not found") +
                (entries.Length == 0 && order != "PCI_BUS_ID" ? " (CUDA_DEVICE_ORDER is not PCI_BUS_ID: on a mixed-GPU host this may be another GPU)" : "");
            BaselineMb = UsedMb() ?? double.NaN;
            peak = BaselineMb;
            loop = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    if (UsedMb() is { } mb)
                        peak = Math.Max(peak, mb);
                    try
                    {
                        await Task.Delay(200, stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            });
        }

        /// <summary>What <c>nvidia-smi -i</c> is given.</summary>
        public string Gpu { get; }

        /// <summary>nvidia-smi's index, name and UUID of that GPU.</summary>
        public string Description { get; }

        /// <summary>memory.used before the job (every process on the GPU).</summary>
        public double BaselineMb { get; }

        public double PeakMb => peak;

        private double? UsedMb() =>
            double.TryParse(Query("memory.used"), NumberStyles.Float, CultureInfo.InvariantCulture, out var mb) ? mb : null;

        /// <summary>One GPU's <paramref name="fields"/> as nvidia-smi prints them (csv, no header, no units), or null without nvidia-smi.</summary>
        private string? Query(string fields)
        {
            try
            {
                using var smi = Process.Start(new ProcessStartInfo("nvidia-smi", ["-i", Gpu, $"--query-gpu={fields}", "--format=csv,noheader,nounits"])
                {
                    RedirectStandardOutput = true, RedirectStandardError = true,
                })!;
                var text = smi.StandardOutput.ReadToEnd();
                smi.WaitForExit();
                return smi.ExitCode == 0 ? text.Trim() : null;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return null; // no nvidia-smi
            }
        }

        public void Dispose()
        {
            stop.Cancel();
            loop.Wait(TimeSpan.FromSeconds(5));
            stop.Dispose();
        }
    }
}
