using Read.Domain.SideNetwork;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Read.Bench.Decoders;
using Read.Bench.Measurement;
using Read.Bench.Reporting;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;

namespace Read.Bench.Streamed;

/// <summary>
/// `read-bench streamed-precompute`: writes a random Llama-shaped BF16 (or --storage F32) checkpoint in shards (or takes --checkpoint),
/// registers it under a memory budget it does not fit — so the registry keeps it on disk — and fine-tunes READ on a
/// small dataset through ReadFineTuner, whose auto precompute then streams one layer at a time. Reports peak RSS, the
/// precompute's tokens/s, weight read throughput and seconds per layer, beside the memory LoRA and full fine-tuning
/// would need for the shape (computed from docs/benchmarks/decoders.md's measured bytes per parameter).
/// </summary>
internal static class StreamedPrecomputeCommand
{
    // Measured in docs/benchmarks/decoders.md (2026-12-03 run): training peak RSS over LlamaModel parameters.
    private const double LoraBytesPerParameter = 7221e6 / 1236e6; // llama-3.2-1b, rank 8, fp32 frozen weights
    private const double FullBytesPerParameter = 12748e6 / 494e6; // qwen2.5-0.5b, fp32 weights + grads + AdamW + activations

    public static Command Create()
    {
        var shapeOption = new Option<string>("--shape") { Description = "llama-2-13b (default), llama-2-7b, stream-test, or a decoders shape.", DefaultValueFactory = _ => "llama-2-13b" };
        var checkpointOption = new Option<string?>("--checkpoint") { Description = "Use this checkpoint directory instead of writing one (kept)." };
        var examplesOption = new Option<int>("--examples") { Description = "Training examples (plus a quarter as many for validation).", DefaultValueFactory = _ => 48 };
        var maxLengthOption = new Option<int>("--max-length") { DefaultValueFactory = _ => 16 };
        var epochsOption = new Option<int>("--epochs") { DefaultValueFactory = _ => 3 };
        var budgetOption = new Option<double>("--memory-budget-gb") { Description = "Read:Training:MemoryBudgetBytes for the run (default 4).", DefaultValueFactory = _ => 4 };
        var storageOption = new Option<string>("--storage")
        {
            Description = "Storage dtype of the written checkpoint: BF16 (default, as published) or F32 (twice the bytes on disk for the same compute).",
            DefaultValueFactory = _ => "BF16",
        };
        storageOption.AcceptOnlyFromAmong("BF16", "F32");
        var shardOption = new Option<double>("--shard-gb") { Description = "Shard size of the written checkpoint (default 4).", DefaultValueFactory = _ => 4 };
        var dataOption = new Option<string>("--data") { DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "read-bench-streamed") };
        var keepOption = new Option<bool>("--keep") { Description = "Keep the written checkpoint (it is deleted by default: tens of GB)." };
        var outOption = new Option<string?>("--out") { Description = "Report directory (default docs/benchmarks); none with --no-report.", DefaultValueFactory = _ => "docs/benchmarks" };
        var noReportOption = new Option<bool>("--no-report") { Description = "Print only (the memory test's child run)." };
        var resultOption = new Option<string?>("--result-json") { Description = "Also write the summary as JSON here." };
        var throughWorkerOption = new Option<bool>("--through-worker") { Description = "Submit the job over HTTP to the API + one Read.Worker on Postgres (child processes) instead of running it in this process." };
        var postgresOption = new Option<string?>("--postgres") { Description = "Postgres connection string for --through-worker (a database of its own is created in it); default $READ_BENCH_POSTGRES.", DefaultValueFactory = _ => Environment.GetEnvironmentVariable("READ_BENCH_POSTGRES") };
        var command = new Command("streamed-precompute", "READ on a Llama-shaped checkpoint larger than memory: layer-streamed precompute + training, peak RSS.")
        {
            shapeOption, checkpointOption, examplesOption, maxLengthOption, epochsOption, budgetOption, storageOption, shardOption, dataOption, keepOption, outOption,
            noReportOption, resultOption, throughWorkerOption, postgresOption,
        };
        command.SetAction(async (parse, ct) =>
        {
            var shape = StreamedShapes.Find(parse.GetValue(shapeOption)!);
            var scratch = Path.GetFullPath(parse.GetValue(dataOption)!);
            var given = parse.GetValue(checkpointOption);
            var directory = given ?? Path.Combine(scratch, "checkpoint-" + shape.Name);
            var cacheDirectory = Path.Combine(scratch, "cache-" + Guid.NewGuid().ToString("N"));
            var written = false;
            try
            {
                var clock = Stopwatch.StartNew();
                if (given is null)
                {
                    Console.WriteLine($"== {shape.Name}: {shape.Parameters / 1e9:F2}B parameters; writing {parse.GetValue(storageOption)} shards to {directory}");
                    written = RandomDecoderCheckpoint.EnsureWritten(directory, shape, parse.GetValue(storageOption)!, seed: 0, (long)(parse.GetValue(shardOption) * 1e9));
                }

                var writeSeconds = clock.Elapsed.TotalSeconds;
                var diskBytes = Directory.EnumerateFiles(directory, "*.safetensors").Sum(f => new FileInfo(f).Length);
                Console.WriteLine($"  checkpoint {diskBytes / 1e9:F2} GB on disk{(written ? $", written in {writeSeconds:F0} s" : "")}");
                var budget = (long)(parse.GetValue(budgetOption) * (1L << 30));
                var (examples, maxLength, epochs) = (parse.GetValue(examplesOption), parse.GetValue(maxLengthOption), parse.GetValue(epochsOption));
                Summary summary;
                if (parse.GetValue(throughWorkerOption))
                {
                    var postgres = parse.GetValue(postgresOption) ?? throw new ArgumentException("--through-worker needs --postgres or READ_BENCH_POSTGRES.");
                    summary = await StreamedJobThroughService.RunAsync(directory, shape.Name, HuggingFaceCheckpoint.Describe(directory).Parameters, diskBytes,
                        Dataset(examples, seed: 1), Dataset(Math.Max(4, examples / 4), seed: 2), ApiHyperparameters(Hyperparameters(epochs, maxLength)), budget,
                        postgres, scratch, ct);
                }
                else
                {
                    summary = Run(directory, shape.Name, diskBytes, examples, maxLength, epochs, budget, cacheDirectory, ct);
                }

                Print(summary);
                if (parse.GetValue(resultOption) is { } json)
                    File.WriteAllText(json, JsonSerializer.Serialize(summary));
                if (!parse.GetValue(noReportOption) && parse.GetValue(outOption) is { } output)
                    Report(summary, output, parse.Tokens.Select(t => t.Value));
                return 0;
            }
            finally
            {
                if (Directory.Exists(cacheDirectory))
                    Directory.Delete(cacheDirectory, recursive: true);
                if (given is null && !parse.GetValue(keepOption) && Directory.Exists(directory))
                    Directory.Delete(directory, recursive: true);
            }
        });
        return command;
    }

    internal sealed record Layer(int Step, double LoadSeconds, double RunSeconds, double ReadMb);

    internal sealed record Summary(
        string Shape, long Parameters, double CheckpointGb, double WeightGbFp32, double BudgetGb, bool Resident, double RegisterSeconds,
        long Tokens, double PrecomputeSeconds, double TrainSeconds, double PeakRssMb, double? ValidationAccuracy,
        IReadOnlyList<Layer> Layers)
    {
        /// <summary>How the job ran: in this process through ReadFineTuner, or submitted to the service.</summary>
        public string Mode { get; init; } = "in process (ReadFineTuner)";

        /// <summary>Seconds from job creation to its terminal status (through the worker only).</summary>
        public double? WallSeconds { get; init; }

        public double TokensPerSecond => Tokens / PrecomputeSeconds;

        public double ReadMbPerSecond => Layers.Count > 0 ? Layers.Sum(l => l.ReadMb) / Layers.Sum(l => l.LoadSeconds) : double.NaN;

        public double SecondsPerLayer => Layers.Any(l => l.Step > 0) ? Layers.Where(l => l.Step > 0).Average(l => l.LoadSeconds + l.RunSeconds) : double.NaN;
    }

    private static Summary Run(string directory, string shapeName, long diskBytes, int examples, int maxLength, int epochs, long budget, string cacheDirectory,
        CancellationToken ct)
    {
        if (!ProcessStats.ResetPeakRss()) // the peak should exclude writing the checkpoint
            Console.Error.WriteLine("  could not reset the peak RSS; it includes writing the checkpoint");
        var clock = Stopwatch.StartNew();
        var options = new BackboneOptions { Checkpoints = { ["streamed"] = directory }, GenerateTinyBackbone = false, ImportBundledBackbones = false };
        using var registry = new BackboneRegistry(options, new TrainingOptions { MemoryBudgetBytes = budget });
        var backbone = registry.Get("streamed"); // over budget: tokenizer, hash and headers only
        var registerSeconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  registered in {registerSeconds:F1} s (weights hash over every shard), resident: {backbone.IsResident}");

        var train = Dataset(examples, seed: 1);
        var validation = Dataset(Math.Max(4, examples / 4), seed: 2);
        var tokens = TokenCount(backbone, train.Concat(validation), maxLength);
        var layers = new List<Layer>();
        var hp = Hyperparameters(epochs, maxLength);
        var tuner = new ReadFineTuner
        {
            StreamedStepCompleted = step =>
            {
                layers.Add(new Layer(step.Step, step.LoadSeconds, step.RunSeconds, step.WeightBytesRead / 1e6));
                Console.WriteLine($"  step {step.Step,3}: load {step.LoadSeconds,6:F2} s ({step.WeightBytesRead / 1e6:F0} MB), run {step.RunSeconds,6:F2} s, peak RSS {ProcessStats.PeakRssMb():F0} MB");
            },
        };
        var result = tuner.Run(backbone, train, validation, hp, cacheDirectory, new SilentProgress(), ct);
        var m = result.Metrics;
        return new Summary(shapeName, HuggingFaceCheckpoint.Describe(directory).Parameters, diskBytes / 1e9, backbone.WeightBytes / 1e9, budget / (double)(1L << 30),
            backbone.IsResident, registerSeconds, tokens, m.PrecomputeSeconds, m.TrainSeconds, ProcessStats.PeakRssMb(), m.ValidationAccuracy, layers);
    }

    /// <summary>The job's hyperparameters, the same in both modes.</summary>
    private static ReadHyperparameters Hyperparameters(int epochs, int maxLength) =>
        new() { Epochs = epochs, BatchSize = 8, MaxLength = maxLength, Pooling = Pooling.Last, SideHiddenSize = 64, LearningRate = 1e-2, Seed = 1 };

    /// <summary>The same, as the API's request body names them.</summary>
    private static object ApiHyperparameters(ReadHyperparameters hp) => new
    {
        epochs = hp.Epochs, batch_size = hp.BatchSize, max_length = hp.MaxLength, pooling = "last", r = hp.SideHiddenSize,
        learning_rate = hp.LearningRate, seed = hp.Seed,
    };

    private static long TokenCount(Backbone backbone, IEnumerable<LabeledExample> examples, int maxLength)
    {
        long total = 0;
        foreach (var e in examples)
        {
            using var encoded = backbone.Encode([e.Text], null, maxLength);
            using var sum = encoded.AttentionMask.sum();
            total += sum.item<long>();
        }

        return total;
    }

    /// <summary>Two classes carried by one word among fillers, as the other benchmarks' synthetic sets.</summary>
    private static List<LabeledExample> Dataset(int count, int seed)
    {
        string[] nouns = ["movie", "film", "book", "phone", "meal", "service", "story", "hotel"];
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i =>
        {
            var positive = i % 2 == 0;
            var text = $"the {nouns[random.Next(nouns.Length)]} was {(positive ? "really good" : "really bad")} and I {(positive ? "loved" : "hated")} it";
            return new LabeledExample(text, null, positive ? "positive" : "negative");
        }).ToList();
    }

    private static void Print(Summary s)
    {
        Console.WriteLine();
        Console.WriteLine(SummaryTable(s).ToMarkdown());
    }

    private static MarkdownTable SummaryTable(Summary s)
    {
        var table = new MarkdownTable("shape", "params (B)", "checkpoint GB (disk)", "weights GB (fp32 compute)", "memory budget GiB", "resident", "peak RSS MB",
            "tokens", "precompute s", "precompute tok/s", "weight load MB/s", "s / layer", "train s", "validation accuracy",
            "LoRA GB (computed)", "full FT GB (computed)");
        table.Add(s.Shape, s.Parameters / 1e9, s.CheckpointGb, s.WeightGbFp32, s.BudgetGb, s.Resident ? "yes" : "no (streamed)", s.PeakRssMb,
            s.Tokens, s.PrecomputeSeconds, s.TokensPerSecond, s.ReadMbPerSecond, s.SecondsPerLayer, s.TrainSeconds, s.ValidationAccuracy,
            s.Parameters * LoraBytesPerParameter / 1e9, s.Parameters * FullBytesPerParameter / 1e9);
        return table;
    }

    private static void Report(Summary s, string output, IEnumerable<string> arguments)
    {
        Directory.CreateDirectory(output);
        var layers = new MarkdownTable("step", "what", "weights read MB", "load s", "run s");
        foreach (var l in s.Layers)
            layers.Add(l.Step, l.Step == 0 ? "embeddings" : l.Step == s.Layers.Count - 1 ? $"layer {l.Step} + final norm" : $"layer {l.Step}", l.ReadMb, l.LoadSeconds, l.RunSeconds);
        var throughWorker = s.WallSeconds is not null;
        var name = throughWorker ? "streamed-precompute-worker" : "streamed-precompute";
        var md = new StringBuilder();
        md.AppendLine("# Layer-streamed precompute: a backbone larger than memory" + (throughWorker ? ", through the worker" : "")).AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, {GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (double)(1L << 30):F1} GiB RAM, TorchSharp CPU. Command:").AppendLine();
        md.AppendLine("```").AppendLine("dotnet run -c Release --project bench/Read.Bench -- streamed-precompute " + string.Join(' ', arguments.SkipWhile(a => a == "streamed-precompute"))).AppendLine("```").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"How the job ran: {s.Mode}.").AppendLine();
        if (throughWorker)
            md.AppendLine(CultureInfo.InvariantCulture, $"The job went through the service as a user's would: files uploaded and the job created over HTTP, taken from the Hangfire queue by one Read.Worker process, its progress, events, checkpoints and adapter written to Postgres. **Peak RSS is the worker process's VmHWM over its whole life** (start-up, registering the backbone — hashing every shard — and the job); the worker ran nothing else. Per-step figures are the job's own events. Job wall time (created → succeeded): {s.WallSeconds:F0} s.").AppendLine();
        md.AppendLine(SummaryTable(s).ToMarkdown());
        md.AppendLine("## Per step").AppendLine();
        md.AppendLine(layers.ToMarkdown());
        File.WriteAllText(Path.Combine(output, name + ".md"), md.ToString());
        File.WriteAllText(Path.Combine(output, name + ".csv"), SummaryTable(s).ToCsv());
        File.WriteAllText(Path.Combine(output, name + "-layers.csv"), layers.ToCsv());
        Console.WriteLine($"wrote {Path.Combine(output, name + ".md")}");
    }

    private sealed class SilentProgress : IFineTuneProgress
    {
        public void StageStarted(FineTuneStage stage) => Console.WriteLine($"  {stage} started, peak RSS so far {ProcessStats.PeakRssMb():F0} MB");

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics metrics)
        {
        }
    }
}
