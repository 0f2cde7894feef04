using System.CommandLine;
using System.Globalization;
using System.Text;
using Read.Bench.Methods;
using Read.Bench.Reporting;

namespace Read.Bench.Comparison;

/// <summary>
/// `read-bench compare`: READ against full fine-tuning, LoRA, BitFit, adapters and a linear probe on the same backbone
/// and data, each method in its own process; a markdown table, a CSV, PNG charts and the paper's targets checked.
/// </summary>
internal static class CompareCommand
{
    private static readonly string[] DefaultMethods = ["full", "lora", "bitfit", "adapters", "probe", "read", "read-nocache", "read:rnn", "read:lstm"];

    public static Command Create()
    {
        var datasets = new Option<string[]>("--dataset") { Description = "Datasets (default amazon imdb yelp).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--method")
        {
            Description = "Methods, each METHOD or read:CELL / read-nocache:CELL (default: " + string.Join(' ', DefaultMethods) + ").",
            AllowMultipleArgumentsPerToken = true,
        };
        // 400 of the 700 training examples keeps the default suite near 20 minutes on 2 cores; --train-limit 0 uses all.
        var trainLimit = new Option<int>("--train-limit") { Description = "First N training examples of each dataset (default 400; 0 = all).", DefaultValueFactory = _ => 400 };
        var testLimit = new Option<int?>("--test-limit") { Description = "First N test examples (default: all)." };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: amazon, 100 train / 100 test examples, 2 epochs." };
        var command = new Command("compare", "All methods × datasets, one process each: memory, CPU seconds, time, parameters, adapter size, test accuracy/F1; charts.")
        {
            datasets, methods, trainLimit, testLimit, epochs, batch, maxLength, seed, data, output, quick,
        };
        command.SetAction(async (parse, ct) =>
        {
            var isQuick = parse.GetValue(quick);
            var selectedDatasets = parse.GetValue(datasets) is { Length: > 0 } d ? d : isQuick ? ["amazon"] : ["amazon", "imdb", "yelp"];
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var selectedMethods = parse.GetValue(methods) is { Length: > 0 } m ? m : DefaultMethods;
            var common = new List<string>
            {
                "--epochs", (isQuick ? 2 : parse.GetValue(epochs)).ToString(CultureInfo.InvariantCulture),
                "--batch", parse.GetValue(batch).ToString(CultureInfo.InvariantCulture),
                "--max-length", parse.GetValue(maxLength).ToString(CultureInfo.InvariantCulture),
                "--seed", parse.GetValue(seed).ToString(CultureInfo.InvariantCulture),
                "--data", parse.GetValue(data)!,
            };
            if ((isQuick ? 100 : parse.GetValue(trainLimit)) is > 0 and var tl)
                common.AddRange(["--train-limit", tl.ToString(CultureInfo.InvariantCulture)]);
            if ((isQuick ? 100 : parse.GetValue(testLimit)) is { } sl)
                common.AddRange(["--test-limit", sl.ToString(CultureInfo.InvariantCulture)]);

            var results = new List<(string Spec, MethodResultLine Result)>();
            foreach (var dataset in selectedDatasets)
            {
                Console.WriteLine($"== {dataset}");
                foreach (var spec in selectedMethods)
                {
                    var (method, cell) = spec.Split(':') is [var name, var c] ? (name, c) : (spec, "gru");
                    var result = await MethodRunner.RunAsync([.. common, "--method", method, "--cell", cell, "--dataset", dataset], ct);
                    results.Add((spec, result));
                    Console.WriteLine($"  {spec,-14} acc {result.TestAccuracy:F3}  RSS {TrainingPeak(result),7:F0} MB  CPU {result.CpuSeconds,7:F1} s  trainable {result.TrainableParameters:N0}");
                }
            }

            var stem = Path.Combine(parse.GetValue(output)!, isQuick ? "compare-quick" : "compare");
            Directory.CreateDirectory(Path.GetDirectoryName(stem)!);
            await WriteReportAsync(stem, results, "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value)),
                clock.Elapsed, ct);
            return 0;
        });
        return command;
    }

    private static async Task WriteReportAsync(
        string stem, IReadOnlyList<(string Spec, MethodResultLine R)> results, string commandLine, TimeSpan elapsed, CancellationToken ct)
    {
        var table = new MarkdownTable("dataset", "method", "lr", "trainable params", "adapter KB", "peak RSS MB", "training peak RSS MB", "wall s", "CPU s",
            "precompute s", "train s", "test accuracy", "test F1", "test macro F1");
        foreach (var (spec, r) in results)
            table.Add(r.Dataset, spec, r.LearningRate, r.TrainableParameters, r.AdapterBytes / 1024.0, r.PeakRssMb, TrainingPeak(r), r.WallSeconds, r.CpuSeconds,
                r.PrecomputeSeconds ?? double.NaN, r.TrainSeconds, r.TestAccuracy ?? double.NaN, r.TestF1 ?? double.NaN, r.TestMacroF1 ?? double.NaN);

        var name = Path.GetFileName(stem);
        var first = results[0].R.Dataset;
        var firstResults = results.Where(x => x.R.Dataset == first).ToList();
        Charts.Bars(stem + "-memory.png", $"Training peak resident memory per method ({first}, {results[0].R.Backbone})", "peak RSS after loading (MB)",
            firstResults.Select(x => (x.Spec, TrainingPeak(x.R))).ToList());
        Charts.Scatter(stem + "-quality-cost.png", "Test accuracy against training cost (every dataset)", "CPU seconds (process total)", "test accuracy",
            results.Where(x => x.R.TestAccuracy is not null).Select(x => (x.Spec, x.R.Dataset, x.R.CpuSeconds, x.R.TestAccuracy!.Value)).ToList());
        Charts.Lines(stem + "-loss.png", $"Training loss per epoch ({first})", "epoch", "mean train loss",
            firstResults.Where(x => x.R.EpochLosses.Count > 0)
                .Select(x => (x.Spec, Enumerable.Range(1, x.R.EpochLosses.Count).Select(i => (double)i).ToArray(), x.R.EpochLosses.ToArray())).ToList());

        var markdown = new StringBuilder()
            .AppendLine($"# Methods compared on {results[0].R.Backbone}")
            .AppendLine()
            .AppendLine($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, one process per row; " +
                        $"the whole suite took {elapsed.TotalMinutes:F1} minutes. Command:")
            .AppendLine().AppendLine("```").AppendLine(commandLine).AppendLine("```").AppendLine()
            .AppendLine($"{results[0].R.TrainExamples} training and {results[0].R.TestExamples} test examples per dataset; epochs {results[0].R.Epochs}, batch {results[0].R.BatchSize}, max length {results[0].R.MaxLength}, seed {results[0].R.Seed}; " +
                        "learning rates per method as in docs/decisions/007. Peak RSS is VmHWM of the method's own process over the whole run " +
                        "(runtime, libtorch and backbone included); training peak RSS is VmHWM after the backbone was loaded and the counter " +
                        "reset, so the one-off spike of reading the weights is left out — the memory the paper's claim is about. CPU s is the " +
                        "process's total processor time over the run (after .NET start-up), the energy proxy on CPU.")
            .AppendLine().AppendLine(table.ToMarkdown())
            .AppendLine("## The paper's claims, checked").AppendLine()
            .AppendLine(Targets(results))
            .AppendLine($"![memory]({name}-memory.png)").AppendLine()
            .AppendLine($"![quality vs cost]({name}-quality-cost.png)").AppendLine()
            .AppendLine($"![loss]({name}-loss.png)");
        await File.WriteAllTextAsync(stem + ".md", markdown.ToString(), ct);
        await File.WriteAllTextAsync(stem + ".csv", table.ToCsv(), ct);
        Console.WriteLine(markdown);
    }

    private static double TrainingPeak(MethodResultLine r) => r.TrainPeakRssMb ?? r.PeakRssMb;

    /// <summary>The targets, per dataset, from the measured rows (READ = GRU with the cache).</summary>
    private static string Targets(IReadOnlyList<(string Spec, MethodResultLine R)> results)
    {
        var table = new MarkdownTable("dataset", "READ training RSS / full (≤ 20%)", "READ CPU / full (≤ 15%)", "READ CPU below LoRA, BitFit, adapters",
            "READ − full accuracy (≥ −2 pts)", "READ − probe accuracy (> 0)");
        foreach (var group in results.GroupBy(x => x.R.Dataset))
        {
            MethodResultLine? Get(string spec) => group.FirstOrDefault(x => x.Spec == spec).R;
            var read = Get("read");
            var full = Get("full");
            if (read is null || full is null)
                continue;
            var peers = new[] { "lora", "bitfit", "adapters" }.Select(Get).OfType<MethodResultLine>().ToList();
            var probe = Get("probe");
            table.Add(group.Key,
                Percent(TrainingPeak(read) / TrainingPeak(full)),
                Percent(read.CpuSeconds / full.CpuSeconds),
                peers.Count == 0 ? "n/a" : peers.All(p => read.CpuSeconds < p.CpuSeconds) ? "yes" : "no: " + string.Join(", ", peers.Where(p => read.CpuSeconds >= p.CpuSeconds).Select(p => p.Method)),
                Points(read.TestAccuracy - full.TestAccuracy),
                Points(read.TestAccuracy - probe?.TestAccuracy));
        }
        return table.ToMarkdown();

        static string Percent(double ratio) => ratio.ToString("P1", CultureInfo.InvariantCulture);
        static string Points(double? difference) => difference is { } d ? (100 * d).ToString("+0.0;-0.0", CultureInfo.InvariantCulture) + " pts" : "n/a";
    }
}
