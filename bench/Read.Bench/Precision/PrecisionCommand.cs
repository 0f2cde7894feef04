using Read.Domain.SideNetwork;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Read.Bench.Data;
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
/// `read-bench precision` (issue 9 §2): frozen backbone weights kept in float32, bfloat16 or float16, computed in
/// float32 or in the storage dtype — max |Δ| of every hidden state vs float32, forward throughput, resident weight
/// memory and READ's test accuracy per configuration, on the Read:Device this process resolves (cpu here).
/// </summary>
internal static class PrecisionCommand
{
    // Accuracy: READ is trained on the configurations the service would pick on this device (half-precision compute is
    // not chosen on the CPU), unless --all-accuracy; every configuration gets the hidden-state and throughput rows.
    private static readonly (BackboneDtype Storage, BackboneDtype Compute, bool Accuracy)[] DefaultConfigurations =
    [
        (BackboneDtype.Float32, BackboneDtype.Float32, true),
        (BackboneDtype.BFloat16, BackboneDtype.Float32, true),
        (BackboneDtype.BFloat16, BackboneDtype.BFloat16, false),
        (BackboneDtype.Float16, BackboneDtype.Float32, true),
        (BackboneDtype.Float16, BackboneDtype.Float16, false),
    ];

    public static Command Create()
    {
        var datasets = new Option<string[]>("--dataset") { Description = "Datasets for READ accuracy (default: amazon imdb yelp).", AllowMultipleArgumentsPerToken = true };
        var backboneId = new Option<string>("--backbone") { DefaultValueFactory = _ => BackboneRegistry.DefaultBackboneId };
        var data = new Option<string>("--data") { Description = "Data directory (backbones, datasets, caches).", DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { Description = "Where the markdown and CSV go.", DefaultValueFactory = _ => "docs/benchmarks" };
        var device = new Option<string>("--device") { Description = "Read:Device (auto, cpu, cuda, cuda:N).", DefaultValueFactory = _ => "auto" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var sequence = new Option<int>("--seq") { Description = "Tokens per example of the timed batch.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 5 };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: 200 train / 50 validation / 100 test examples, 2 epochs." };
        var allAccuracy = new Option<bool>("--all-accuracy") { Description = "Train READ on every configuration, half-precision compute included." };
        var command = new Command("precision", "Backbone weights in fp32/bf16/fp16: hidden-state error vs fp32, forward tokens/s, weight memory, READ accuracy.")
        {
            datasets, backboneId, data, output, device, batch, sequence, repeats, quick, allAccuracy,
        };
        command.SetAction(async (parse, ct) =>
        {
            var commandLine = "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value));
            await RunAsync(parse.GetValue(datasets) is { Length: > 0 } d ? d : ["amazon", "imdb", "yelp"], parse.GetValue(backboneId)!,
                parse.GetValue(data)!, parse.GetValue(output)!, ReadDevice.Resolve(parse.GetValue(device)), parse.GetValue(batch),
                parse.GetValue(sequence), Math.Max(1, parse.GetValue(repeats)), parse.GetValue(quick), parse.GetValue(allAccuracy), commandLine, ct);
            return 0;
        });
        return command;
    }

    private static async Task RunAsync(
        IReadOnlyList<string> datasets, string id, string dataDirectory, string outputDirectory, ReadDevice device, int b, int s, int repeats,
        bool quick, bool allAccuracy, string commandLine, CancellationToken ct)
    {
        string directory;
        using (var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = dataDirectory }))
        {
            registry.Info(id); // imports a bundled backbone on first use
            directory = Path.GetFullPath(Path.Combine(dataDirectory, "backbones", id));
        }

        var splits = new Dictionary<string, BenchDatasets.Splits>(StringComparer.Ordinal);
        foreach (var name in datasets)
            splits[name] = await BenchDatasets.LoadAsync(name, dataDirectory, quick ? 200 : null, quick ? 50 : null, quick ? 100 : null, ct);
        // Real text for the hidden-state comparison: the first test examples of the first dataset.
        var probeTexts = splits[datasets[0]].Test.Take(64).Select(e => e.Text).ToList();
        var matmul = MatmulRate.MeasureGflops();
        Console.WriteLine($"backbone {id} on {device}; {torch.get_num_threads()} threads; fp32 matmul {matmul:F1} GFLOP/s");

        var summary = new MarkdownTable("weights", "compute", "weight MB", "max abs Δ vs fp32 (any layer)", "max abs Δ last layer", "relative (last layer)",
            "forward tokens/s", "vs fp32 (timed next to it)", "load s");
        var accuracy = new MarkdownTable(["weights", "compute", .. datasets.Select(n => n + " test acc"), .. datasets.Select(n => n + " precompute s")]);
        Tensor[]? reference = null;
        Tensor? referenceMask = null;
        var cacheRoot = Path.Combine(dataDirectory, "bench-cache", "precision-" + DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture));
        foreach (var (storage, compute, trainRead) in DefaultConfigurations)
        {
            ct.ThrowIfCancellationRequested();
            var load = Stopwatch.StartNew();
            using var backbone = HuggingFaceCheckpoint.Load(id, directory, storage, device, compute);
            var loadSeconds = load.Elapsed.TotalSeconds;
            var weightBytes = backbone.Model.parameters().Sum(p => p.numel() * p.ElementSize);

            // Hidden states on real text, compared position by position over real tokens only.
            using var probe = backbone.Encode(probeTexts, null, 128);
            var states = backbone.HiddenStates(probe).Select(t => t.cpu()).ToArray();
            double maxAny = 0, maxLast = 0, relLast = 0;
            if (reference is null)
            {
                reference = states;
                referenceMask = probe.AttentionMask.cpu().to_type(ScalarType.Float32).unsqueeze(-1);
            }
            else
            {
                for (var l = 0; l < states.Length; l++)
                {
                    using var delta = ((states[l] - reference[l]).abs() * referenceMask!).max();
                    maxAny = Math.Max(maxAny, delta.item<float>());
                }

                using var lastDelta = ((states[^1] - reference[^1]).abs() * referenceMask!).max();
                using var lastScale = (reference[^1].abs() * referenceMask!).max();
                maxLast = lastDelta.item<float>();
                relLast = maxLast / lastScale.item<float>();
            }

            var rate = ForwardRate(backbone, b, s, repeats);
            // The fp32 reference is timed again right after, so a change in machine load shows as a drift of its figure.
            var referenceAgain = storage == BackboneDtype.Float32 ? rate : ReferenceRate(directory, id, device, b, s, repeats);
            summary.Add(storage.Name(), compute.Name(), weightBytes / 1e6, maxAny, maxLast, relLast, rate, rate / referenceAgain, loadSeconds);
            Console.WriteLine($"{storage.Name()}/{compute.Name()}: {weightBytes / 1e6:F1} MB, max |Δ| {maxAny:G3} (last {maxLast:G3}), {rate:N0} tokens/s (fp32 now {referenceAgain:N0})");

            var row = new List<object?> { storage.Name(), compute.Name() };
            var seconds = new List<object?>();
            foreach (var name in trainRead || allAccuracy ? datasets : (IReadOnlyList<string>)[])
            {
                var (train, validation, test) = (splits[name].Train, splits[name].Validation, splits[name].Test);
                // read-quality-uci's settings (docs/benchmarks/read-quality-uci.md), mean pooling.
                var hp = new ReadHyperparameters
                {
                    Pooling = Pooling.Mean, Epochs = quick ? 2 : 20, EarlyStoppingPatience = 3, SideHiddenSize = 64, LearningRate = 2e-3, MaxLength = 128, Seed = 0,
                };
                var cache = Path.Combine(cacheRoot, $"{name}-{storage.Name()}-{compute.Name()}");
                var result = new ReadFineTuner().Run(backbone, train, validation, FineTuneTask.Classification, hp, cache, new QuietProgress(), ct);
                using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
                var evaluation = ReadFineTuner.Evaluate(backbone, adapter, test, cache);
                row.Add(evaluation.Metrics.Accuracy);
                seconds.Add(result.Metrics.PrecomputeSeconds);
                Console.WriteLine($"  {name}: test accuracy {evaluation.Metrics.Accuracy:F3}, precompute {result.Metrics.PrecomputeSeconds:F2} s");
            }

            if (trainRead || allAccuracy)
                accuracy.Add([.. row, .. seconds]);
            if (!ReferenceEquals(states, reference))
                foreach (var t in states)
                    t.Dispose();
        }

        var int8 = Int8Probe();
        Console.WriteLine($"int8 weight-only: {int8}");
        Directory.CreateDirectory(outputDirectory);
        var stem = Path.Combine(outputDirectory, "precision" + (quick ? "-quick" : ""));
        var markdown =
            $"# Backbone precision on {id} ({device})\n\n" +
            $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, {torch.get_num_threads()} threads, " +
            $"load average at the end {LoadAverage()} (a shared machine: throughput ratios are timed back to back, absolute rates are not comparable across runs); " +
            $"fp32 matmul {matmul:F1} GFLOP/s (1024²), same process. Command:\n\n```\n{commandLine}\n```\n\n" +
            "Hidden states: the first 64 test texts of " + datasets[0] + ", max length 128, every layer (embeddings included), real tokens only, " +
            "against the float32 weights computing in float32. Forward: a synthetic batch of " +
            $"{b} × {s} tokens, median of {repeats} after a warm-up. Weight MB: the backbone's resident parameters.\n\n" +
            summary.ToMarkdown() +
            "\n## READ accuracy (test split)\n\nREAD gru r=64, mean pooling, epochs ≤ 20 with patience 3, lr 0.002, max length 128, seed 0 " +
            "(read-quality-uci's settings); each configuration writes its own activation cache (the precision enters the cache key). " +
            (allAccuracy ? "" : "Only the configurations the service picks on this device are trained (half-precision compute is not picked on the CPU; --all-accuracy trains them too). ") + "\n\n" +
            accuracy.ToMarkdown() +
            $"\n## int8 weight-only\n\n{int8}\n";
        await File.WriteAllTextAsync(stem + ".md", markdown, ct);
        await File.WriteAllTextAsync(stem + ".csv", summary.ToCsv(), ct);
        await File.WriteAllTextAsync(stem + "-accuracy.csv", accuracy.ToCsv(), ct);
        Console.WriteLine();
        Console.WriteLine(summary.ToMarkdown());
        Console.WriteLine(accuracy.ToMarkdown());
        Console.WriteLine($"wrote {stem}.md, .csv, -accuracy.csv");
    }

    private static Backbone? reference;

    private static double ReferenceRate(string directory, string id, ReadDevice device, int b, int s, int repeats)
    {
        reference ??= HuggingFaceCheckpoint.Load(id, directory, BackboneDtype.Float32, device, BackboneDtype.Float32);
        return ForwardRate(reference, b, s, repeats);
    }

    /// <summary>Tokens per second of the backbone forward on a synthetic [CLS] … [SEP] batch of b × s tokens.</summary>
    private static double ForwardRate(Backbone backbone, int b, int s, int repeats)
    {
        var random = new Random(0);
        var ids = Enumerable.Range(0, b * s).Select(i => i % s == 0 ? 101L : i % s == s - 1 ? 102L : random.Next(1000, 30000)).ToArray();
        var ones = Enumerable.Repeat(1L, b * s).ToArray();
        using var batch = new EncodedBatch(torch.tensor(ids, [b, s], device: backbone.Device.Torch),
            torch.tensor(ones, [b, s], device: backbone.Device.Torch), torch.tensor(new long[b * s], [b, s], device: backbone.Device.Torch));
        var seconds = Timing.Median(repeats, () =>
        {
            foreach (var h in backbone.HiddenStates(batch))
                h.Dispose();
        });
        return b * s / seconds;
    }

    /// <summary>
    /// What TorchSharp offers for int8 weights: quantize_per_channel exists, but a quantized tensor cannot enter
    /// nn.functional.linear, and there is no dynamic-quantized Linear (torch.ao) binding; the only route is dequantizing
    /// per call, which is what bf16 storage already does at half the memory error. Measured here, not assumed.
    /// </summary>
    private static string Int8Probe()
    {
        using var scope = NewDisposeScope();
        var weight = randn(384, 384) * 0.05f;
        var x = randn(32, 384);
        var scales = weight.abs().amax([1]) / 127f;
        Tensor quantized;
        try
        {
            quantized = quantize_per_channel(weight, scales.to_type(ScalarType.Float64), zeros(384, dtype: ScalarType.Int64), 0, ScalarType.QInt8);
        }
        catch (Exception e)
        {
            return $"torch.quantize_per_channel failed: {FirstLine(e)}. Not kept.";
        }

        string direct;
        try
        {
            using var y = nn.functional.linear(x, quantized);
            direct = "nn.functional.linear accepted a QInt8 weight (unexpected)";
        }
        catch (Exception e)
        {
            direct = $"nn.functional.linear on a QInt8 weight fails (`{FirstLine(e)}`)";
        }

        var exact = nn.functional.linear(x, weight);
        var viaDequantize = nn.functional.linear(x, quantized.dequantize());
        var error = (viaDequantize - exact).abs().max().item<float>();
        var bf16 = (nn.functional.linear(x, weight.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)) - exact).abs().max().item<float>();
        return $"TorchSharp 0.107 has torch.quantize_per_channel (QInt8) but {direct}, and exposes no dynamically quantized Linear " +
               "(no torch.ao binding), so int8 compute is not available from C#. The only route, int8 storage dequantized per call, " +
               $"gives max |Δ| {error.ToString("G3", CultureInfo.InvariantCulture)} on one 384×384 projection of N(0,1) inputs " +
               $"(bf16 storage: {bf16.ToString("G3", CultureInfo.InvariantCulture)}) and still runs an fp32 matmul, so it saves memory only. Not kept.";
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static string FirstLine(Exception e) => e.Message.Split('\n')[0].Trim();

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
