using Read.Domain.SideNetwork;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Read.Bench.Data;
using Read.Bench.Decoders;
using Read.Bench.Measurement;
using Read.Bench.Reporting;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Bench.Precision;

/// <summary>
/// `read-bench precision` (issue 9 §2): frozen backbone weights kept in float32, bfloat16, float16 or int8 (projections,
/// dequantized per call), computed in float32 or in the storage dtype — on MiniLM (max |Δ| of every hidden state vs
/// float32, forward throughput, resident weight memory, READ's test accuracy on the UCI sets) and on a generated
/// Llama-family decoder of a real model's width (states, throughput, memory); plus the projection kernels' rates per
/// dtype, which decide the CPU compute policy (BackbonePrecision.ComputeDtype). On the Read:Device this process resolves.
/// </summary>
internal static class PrecisionCommand
{
    private sealed record Configuration(BackboneDtype Storage, BackboneDtype Compute, bool Int8 = false)
    {
        public string Weights => Int8 ? "int8 projections + bfloat16" : Storage.Name();

        public string Key => Int8 ? "int8" : $"{Storage.Name()}-{Compute.Name()}";

        /// <summary>Whether the service computes in this dtype for these weights on <paramref name="device"/> (int8 is not a service option).</summary>
        public bool ServicePicks(ReadDevice device) => !Int8 && BackbonePrecision.ComputeDtype(Storage, device) == Compute;
    }

    private static readonly Configuration[] Configurations =
    [
        new(BackboneDtype.Float32, BackboneDtype.Float32),
        new(BackboneDtype.BFloat16, BackboneDtype.Float32),
        new(BackboneDtype.BFloat16, BackboneDtype.BFloat16),
        new(BackboneDtype.Float16, BackboneDtype.Float32),
        new(BackboneDtype.Float16, BackboneDtype.Float16),
        new(BackboneDtype.BFloat16, BackboneDtype.Float32, Int8: true),
    ];

    // fp16 compute is never picked on a CPU and runs at a fraction of fp32 there: not worth a decoder forward.
    private static readonly Configuration[] DecoderConfigurations = [.. Configurations.Where(c => !(c.Storage == BackboneDtype.Float16 && c.Compute == BackboneDtype.Float16))];

    public static Command Create()
    {
        var datasets = new Option<string[]>("--dataset") { Description = "Datasets for READ accuracy (default: amazon imdb yelp).", AllowMultipleArgumentsPerToken = true };
        var backboneId = new Option<string>("--backbone") { DefaultValueFactory = _ => BackboneRegistry.DefaultBackboneId };
        var data = new Option<string>("--data") { Description = "Data directory (backbones, datasets, caches, the generated decoder).", DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { Description = "Where the markdown and CSV go.", DefaultValueFactory = _ => "docs/benchmarks" };
        var name = new Option<string>("--name") { Description = "File stem of the report (NAME.md, NAME.csv, NAME-accuracy.csv, NAME-decoder.csv, NAME-kernels.csv).", DefaultValueFactory = _ => "precision" };
        var device = new Option<string>("--device") { Description = "Read:Device (auto, cpu, cuda, cuda:N).", DefaultValueFactory = _ => "auto" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var sequence = new Option<int>("--seq") { Description = "Tokens per example of the timed batch.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { Description = "Timed forwards per configuration (each next to an fp32 one).", DefaultValueFactory = _ => 5 };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: 200 train / 50 validation / 100 test examples, 2 epochs, a tiny decoder." };
        var allAccuracy = new Option<bool>("--all-accuracy") { Description = "Train READ on every configuration, not only those the service picks on this device (and int8)." };
        var noAccuracy = new Option<bool>("--no-accuracy") { Description = "Skip READ training (states, memory and timings only; e.g. a rerun with more --repeats)." };
        var decoder = new Option<string>("--decoder") { Description = "Decoder shape for the decoder table (qwen2.5-0.5b, llama-3.2-1b, ...; 'none' skips it).", DefaultValueFactory = _ => "qwen2.5-0.5b" };
        var decoderLayers = new Option<int>("--decoder-layers") { Description = "Layers of the generated decoder (its width is the shape's).", DefaultValueFactory = _ => 4 };
        var kernelRounds = new Option<int>("--kernel-rounds") { Description = "Round-robin rounds of the projection-kernel table (0 skips it).", DefaultValueFactory = _ => 5 };
        var command = new Command("precision",
            "Backbone weights in fp32/bf16/fp16/int8: hidden-state error vs fp32, forward tokens/s, weight memory, READ accuracy; a decoder; the kernels per dtype.")
        {
            datasets, backboneId, data, output, name, device, batch, sequence, repeats, quick, allAccuracy, noAccuracy, decoder, decoderLayers, kernelRounds,
        };
        command.SetAction(async (parse, ct) =>
        {
            var commandLine = "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value));
            var settings = new Settings(parse.GetValue(datasets) is { Length: > 0 } d ? d : ["amazon", "imdb", "yelp"], parse.GetValue(backboneId)!,
                parse.GetValue(data)!, parse.GetValue(output)!, parse.GetValue(name)!, ReadDevice.Resolve(parse.GetValue(device)), parse.GetValue(batch),
                parse.GetValue(sequence), Math.Max(1, parse.GetValue(repeats)), parse.GetValue(quick), parse.GetValue(allAccuracy), parse.GetValue(noAccuracy),
                parse.GetValue(decoder)!, Math.Max(1, parse.GetValue(decoderLayers)), parse.GetValue(kernelRounds), commandLine);
            await RunAsync(settings, ct);
            return 0;
        });
        return command;
    }

    private sealed record Settings(
        IReadOnlyList<string> Datasets, string Id, string DataDirectory, string OutputDirectory, string Name, ReadDevice Device, int Batch, int Length,
        int Repeats, bool Quick, bool AllAccuracy, bool NoAccuracy, string Decoder, int DecoderLayers, int KernelRounds, string CommandLine);

    private static async Task RunAsync(Settings s, CancellationToken ct)
    {
        string directory;
        using (var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = s.DataDirectory }))
        {
            registry.Info(s.Id); // imports a bundled backbone on first use
            directory = Path.GetFullPath(Path.Combine(s.DataDirectory, "backbones", s.Id));
        }

        var splits = new Dictionary<string, BenchDatasets.Splits>(StringComparer.Ordinal);
        foreach (var name in s.Datasets)
            splits[name] = await BenchDatasets.LoadAsync(name, s.DataDirectory, s.Quick ? 200 : null, s.Quick ? 50 : null, s.Quick ? 100 : null, ct);
        // Real text for the hidden-state comparison: the first test examples of the first dataset.
        var probeTexts = splits[s.Datasets[0]].Test.Take(64).Select(e => e.Text).ToList();
        var matmul = MatmulRate.MeasureGflops();
        var host = $"{HostCpu.Model}; flags {HostCpu.RelevantFlags}; {Environment.ProcessorCount} cores, {torch.get_num_threads()} threads; " +
                   $"native bf16 (BackbonePrecision.CpuHasNativeBf16): {(BackbonePrecision.CpuHasNativeBf16 ? "yes" : "no")}";
        var policy = $"bf16 weights compute in {BackbonePrecision.ComputeDtype(BackboneDtype.BFloat16, s.Device).Name()}, " +
                     $"fp16 weights in {BackbonePrecision.ComputeDtype(BackboneDtype.Float16, s.Device).Name()}";
        Console.WriteLine($"{s.Device}: {host}; fp32 matmul {matmul:F1} GFLOP/s; the service's rule here: {policy}");

        MarkdownTable? kernels = null;
        if (s.KernelRounds > 0 && !s.Device.IsCuda)
            kernels = KernelRates.Measure(s.KernelRounds);

        var accuracy = new MarkdownTable(["weights", "compute", .. s.Datasets.Select(n => n + " test acc"), .. s.Datasets.Select(n => n + " precompute s")]);
        var cacheRoot = Path.Combine(s.DataDirectory, "bench-cache", "precision-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture));
        var summary = Measure(s.Id, directory, s.Device, Configurations, probeTexts, s.Batch, s.Length, s.Repeats, (configuration, backbone) =>
        {
            if (s.NoAccuracy || !(s.AllAccuracy || configuration.Int8 || configuration.ServicePicks(s.Device)))
                return;
            var row = new List<object?> { configuration.Weights, configuration.Compute.Name() };
            var seconds = new List<object?>();
            foreach (var name in s.Datasets)
            {
                ct.ThrowIfCancellationRequested();
                var (train, validation, test) = (splits[name].Train, splits[name].Validation, splits[name].Test);
                // read-quality-uci's settings (docs/benchmarks/read-quality-uci.md), mean pooling.
                var hp = new ReadHyperparameters
                {
                    Pooling = Pooling.Mean, Epochs = s.Quick ? 2 : 20, EarlyStoppingPatience = 3, SideHiddenSize = 64, LearningRate = 2e-3, MaxLength = 128, Seed = 0,
                };
                var cache = Path.Combine(cacheRoot, $"{name}-{configuration.Key}");
                var result = new ReadFineTuner().Run(backbone, train, validation, FineTuneTask.Classification, hp, cache, new QuietProgress(), ct);
                using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
                var evaluation = ReadFineTuner.Evaluate(backbone, adapter, test, cache);
                row.Add(evaluation.Metrics.Accuracy);
                seconds.Add(result.Metrics.PrecomputeSeconds);
                Console.WriteLine($"  {name}: test accuracy {evaluation.Metrics.Accuracy:F3}, precompute {result.Metrics.PrecomputeSeconds:F2} s");
            }

            accuracy.Add([.. row, .. seconds]);
        });

        MarkdownTable? decoderSummary = null;
        var decoderNote = "";
        if (!string.Equals(s.Decoder, "none", StringComparison.OrdinalIgnoreCase))
        {
            var published = DecoderShape.Find(s.Quick ? "tiny-llama" : s.Decoder);
            var shape = published with { Name = $"{published.Name}-{s.DecoderLayers}l", Layers = Math.Min(s.DecoderLayers, published.Layers) };
            var decoderDirectory = Path.GetFullPath(Path.Combine(s.DataDirectory, "bench-precision", shape.Name + "-f32"));
            // F32 on disk, so bf16 storage really rounds (a BF16 checkpoint widened to fp32 would equal its bf16 model).
            if (RandomDecoderCheckpoint.EnsureWritten(decoderDirectory, shape, "F32", seed: 0))
                Console.WriteLine($"wrote {decoderDirectory}");
            var decoderTexts = probeTexts.Take(16).ToList();
            decoderSummary = Measure(shape.Name, decoderDirectory, s.Device, DecoderConfigurations, decoderTexts, s.Batch, s.Length, s.Repeats, null);
            decoderNote = $"{published.Name}'s published width (hidden {shape.Hidden}, intermediate {shape.Intermediate}, {shape.Heads} heads / {shape.KvHeads} key-value heads, " +
                          $"vocabulary {shape.Vocab}) with {shape.Layers} of its {published.Layers} layers, random weights (uniform, std 0.02; norms 1) " +
                          $"written as F32 by RandomDecoderCheckpoint (seed 0): {shape.Parameters / 1e6:F0} M parameters, of which the embedding table is " +
                          $"{shape.EmbeddingParameters / 1e6:F0} M. Hidden states: the first {decoderTexts.Count} probe texts (byte-level BPE), every layer, real tokens only.";
        }

        Directory.CreateDirectory(s.OutputDirectory);
        var stem = Path.Combine(s.OutputDirectory, s.Name + (s.Quick ? "-quick" : ""));
        var markdown =
            $"# Backbone precision on {s.Id} ({s.Device})\n\n" +
            $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC. CPU: {host}. Load average at the end {LoadAverage()} (a shared machine: " +
            "ratios are timed side by side in this run, absolute rates are not comparable across runs); " +
            $"fp32 matmul {matmul:F1} GFLOP/s (1024²), same process. The service's rule on this machine (BackbonePrecision.ComputeDtype): {policy}. Command:\n\n" +
            $"```\n{s.CommandLine}\n```\n\n" +
            (kernels is null ? "" :
                "## Projection kernels per dtype\n\nnn.functional.linear, one thread pool of the process; the variants of a shape timed round-robin " +
                $"({s.KernelRounds} rounds, median), ratios are time(fp32) / time(variant), so > 1 is faster than fp32.\n\n" + kernels.ToMarkdown() + "\n") +
            $"## {s.Id}\n\n" +
            "Hidden states: the first 64 test texts of " + s.Datasets[0] + ", max length 128, every layer (embeddings included), real tokens only, " +
            "against the float32 weights computing in float32. Forward: a synthetic batch of " +
            $"{s.Batch} × {s.Length} tokens; each configuration's forward is timed alternately with the float32 model's ({s.Repeats} rounds after a warm-up, " +
            "medians), the last column is their ratio. Weight MB: what the backbone holds resident (parameters; for int8, plus the int8 weights and their " +
            "float32 scales). ✓: what the service computes in for these weights on this device.\n\n" +
            summary.ToMarkdown() +
            (s.NoAccuracy ? "" : "\n### READ accuracy (test split)\n\nREAD gru r=64, mean pooling, epochs ≤ 20 with patience 3, lr 0.002, max length 128, seed 0 " +
            "(read-quality-uci's settings); each configuration writes its own activation cache (the precision enters the cache key; the int8 " +
            "configuration is a bench-only variant with its own cache folder). " +
            (s.AllAccuracy ? "Every configuration is trained (--all-accuracy)." : "Trained: the configurations the service picks on this device, and int8.") + "\n\n" +
            accuracy.ToMarkdown()) +
            (decoderSummary is null ? "" : $"\n## Decoder: {decoderNote}\n\nForward: {s.Batch} × {s.Length} synthetic tokens, timed as above.\n\n{decoderSummary.ToMarkdown()}");
        await File.WriteAllTextAsync(stem + ".md", markdown, ct);
        await File.WriteAllTextAsync(stem + ".csv", summary.ToCsv(), ct);
        if (!s.NoAccuracy)
            await File.WriteAllTextAsync(stem + "-accuracy.csv", accuracy.ToCsv(), ct);
        if (decoderSummary is not null)
            await File.WriteAllTextAsync(stem + "-decoder.csv", decoderSummary.ToCsv(), ct);
        if (kernels is not null)
            await File.WriteAllTextAsync(stem + "-kernels.csv", kernels.ToCsv(), ct);
        Console.WriteLine();
        Console.WriteLine(markdown);
        Console.WriteLine($"wrote {stem}.md and its CSVs");
    }

    /// <summary>
    /// One row per configuration: resident weight bytes, hidden-state error vs the float32 model on <paramref name="probeTexts"/>,
    /// forward rate timed alternately with the float32 model's; <paramref name="alsoRun"/> gets each loaded configuration (READ accuracy).
    /// </summary>
    private static MarkdownTable Measure(string id, string directory, ReadDevice device, IReadOnlyList<Configuration> configurations,
        IReadOnlyList<string> probeTexts, int b, int s, int repeats, Action<Configuration, Backbone>? alsoRun)
    {
        var summary = new MarkdownTable("weights", "compute", "service", "weight MB", "max abs Δ vs fp32 (any layer)", "max abs Δ last layer", "relative (last layer)",
            "forward tokens/s", "fp32 tokens/s (alternating)", "vs fp32", "load s");
        using var reference = HuggingFaceCheckpoint.Load(id, directory, BackboneDtype.Float32, device, BackboneDtype.Float32);
        using var probe = reference.Encode(probeTexts, null, 128);
        var mask = probe.AttentionMask.cpu().to_type(ScalarType.Float32).unsqueeze(-1);
        var expected = reference.HiddenStates(probe).Select(t => t.cpu()).ToArray();
        var (referenceForward, referenceBatch) = Forward(reference, b, s);
        try
        {
            foreach (var configuration in configurations)
            {
                var load = Stopwatch.StartNew();
                using var backbone = HuggingFaceCheckpoint.Load(id, directory, configuration.Storage, device, configuration.Compute);
                using var int8 = configuration.Int8 ? Int8WeightOnly.Apply(backbone, reference) : null;
                var loadSeconds = load.Elapsed.TotalSeconds;
                var weightBytes = backbone.Model.parameters().Sum(p => p.numel() * p.ElementSize) + (int8?.Bytes ?? 0);

                using var encoded = backbone.Encode(probeTexts, null, 128);
                var states = backbone.HiddenStates(encoded).Select(t => t.cpu()).ToArray();
                double maxAny = 0;
                for (var l = 0; l < states.Length; l++)
                {
                    using var delta = ((states[l] - expected[l]).abs() * mask).max();
                    maxAny = Math.Max(maxAny, delta.item<float>());
                }

                using var lastDelta = ((states[^1] - expected[^1]).abs() * mask).max();
                using var lastScale = (expected[^1].abs() * mask).max();
                var maxLast = lastDelta.item<float>();
                foreach (var t in states)
                    t.Dispose();

                var (forward, batch) = Forward(backbone, b, s);
                double[] seconds;
                using (batch)
                    seconds = KernelRates.RoundRobinMedians([forward, referenceForward], repeats);
                var (rate, referenceRate) = (b * s / seconds[0], b * s / seconds[1]);
                var picks = configuration.ServicePicks(device) ? "✓" : "";
                summary.Add(configuration.Weights, configuration.Compute.Name(), picks, weightBytes / 1e6, maxAny, maxLast, maxLast / lastScale.item<float>(),
                    rate, referenceRate, rate / referenceRate, loadSeconds);
                Console.WriteLine($"{id} {configuration.Weights}/{configuration.Compute.Name()}: {weightBytes / 1e6:F1} MB, max |Δ| {maxAny:G3} (last {maxLast:G3}), " +
                                  $"{rate:N0} tokens/s (fp32 alternating {referenceRate:N0})" + (int8 is null ? "" : $", {int8.Projections} int8 projections"));
                alsoRun?.Invoke(configuration, backbone);
            }
        }
        finally
        {
            referenceBatch.Dispose();
            foreach (var t in expected)
                t.Dispose();
            mask.Dispose();
        }

        return summary;
    }

    /// <summary>A backbone forward on a synthetic b × s batch of ids 1000..29999 between [CLS]/[SEP]-like ids (valid rows of every backbone here).</summary>
    private static (Action Forward, EncodedBatch Batch) Forward(Backbone backbone, int b, int s)
    {
        var random = new Random(0);
        var ids = Enumerable.Range(0, b * s).Select(i => i % s == 0 ? 101L : i % s == s - 1 ? 102L : random.Next(1000, 30000)).ToArray();
        var ones = Enumerable.Repeat(1L, b * s).ToArray();
        var batch = new EncodedBatch(torch.tensor(ids, [b, s], device: backbone.Device.Torch),
            torch.tensor(ones, [b, s], device: backbone.Device.Torch), torch.tensor(new long[b * s], [b, s], device: backbone.Device.Torch));
        return (() =>
        {
            foreach (var h in backbone.HiddenStates(batch))
                h.Dispose();
        }, batch);
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private sealed class QuietProgress : IFineTuneProgress
    {
        public void StageStarted(FineTuneStage stage)
        {
        }

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics epoch)
        {
        }
    }
}
