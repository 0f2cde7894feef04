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
/// precompute tokens/s, seconds per epoch and peak GPU memory (nvidia-smi's per-process figure, sampled: TorchSharp
/// 0.107 has no torch.cuda.max_memory_allocated), or peak RSS on the CPU. Needs no network: the data is generated.
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

            using var gpu = resolved.IsCuda ? new GpuMemorySampler() : null;
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
            Console.WriteLine($"{"peak GPU memory MB (nvidia-smi)",-34} {(gpu is null ? "n/a (cpu)" : gpu.PeakMb.ToString("N0", CultureInfo.InvariantCulture)),14}");
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

    /// <summary>Polls nvidia-smi every 200 ms for this process's GPU memory and keeps the peak.</summary>
    private sealed class GpuMemorySampler : IDisposable
    {
        private readonly CancellationTokenSource stop = new();
        private readonly Task loop;
        private double peak;

        public GpuMemorySampler() => loop = Task.Run(async () =>
        {
            var pid = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var smi = Process.Start(new ProcessStartInfo("nvidia-smi", "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits")
                    {
                        RedirectStandardOutput = true, RedirectStandardError = true,
                    })!;
                    var text = await smi.StandardOutput.ReadToEndAsync();
                    await smi.WaitForExitAsync();
                    foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var parts = line.Split(',', StringSplitOptions.TrimEntries);
                        if (parts.Length == 2 && parts[0] == pid && double.TryParse(parts[1], CultureInfo.InvariantCulture, out var mb))
                            peak = Math.Max(peak, mb);
                    }
                }
                catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
                {
                    return; // no nvidia-smi: the figure stays 0
                }

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

        public double PeakMb => peak;

        public void Dispose()
        {
            stop.Cancel();
            loop.Wait(TimeSpan.FromSeconds(5));
            stop.Dispose();
        }
    }
}
