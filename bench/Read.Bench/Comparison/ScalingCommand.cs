using System.CommandLine;
using System.Globalization;
using System.Text;
using Read.Bench.Methods;
using Read.Bench.Reporting;

namespace Read.Bench.Comparison;

/// <summary>
/// `read-bench scaling`: peak training memory and trainable parameters of full fine-tuning, LoRA and READ as a
/// random-weight BERT grows (L4/d256 … L24/d1024), at fixed batch size and sequence length, one process per point.
/// </summary>
internal static class ScalingCommand
{
    public static Command Create()
    {
        var configs = new Option<string[]>("--config") { Description = "L,d pairs (default 4,256 6,384 12,768 24,1024).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--method") { Description = "Methods (default full lora read).", AllowMultipleArgumentsPerToken = true };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 8 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 3 };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: configs 2,128 and 4,256, one step." };
        var command = new Command("scaling", "Training memory and trainable parameters as the backbone grows (random weights), per method.")
        {
            configs, methods, batch, maxLength, steps, data, output, quick,
        };
        command.SetAction(async (parse, ct) =>
        {
            var isQuick = parse.GetValue(quick);
            var selectedConfigs = parse.GetValue(configs) is { Length: > 0 } c ? c : isQuick ? ["2,128", "4,256"] : ["4,256", "6,384", "12,768", "24,1024"];
            var selectedMethods = parse.GetValue(methods) is { Length: > 0 } m ? m : ["full", "lora", "read"];
            var b = parse.GetValue(batch);
            var s = parse.GetValue(maxLength);
            var results = new List<(string Config, long EncoderParameters, MethodResultLine R)>();
            foreach (var config in selectedConfigs)
            {
                var parts = config.Split(',');
                var (layers, width) = (int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture));
                // Per layer: Q, K, V, O (4d² + 4d), two LayerNorms (4d), FFN d→4d→d (8d² + 5d).
                var encoderParameters = layers * (12L * width * width + 13L * width);
                Console.WriteLine($"== L{layers}/d{width}: {encoderParameters / 1e6:F1}M encoder parameters");
                foreach (var method in selectedMethods)
                {
                    var result = await MethodRunner.RunAsync(
                    [
                        "--method", method, "--random-config", config, "--batch", b.ToString(CultureInfo.InvariantCulture),
                        "--max-length", s.ToString(CultureInfo.InvariantCulture),
                        "--steps", (isQuick ? 1 : parse.GetValue(steps)).ToString(CultureInfo.InvariantCulture), "--data", parse.GetValue(data)!,
                    ], ct);
                    results.Add(($"L{layers}/d{width}", encoderParameters, result));
                    Console.WriteLine($"  {method,-10} RSS {result.TrainPeakRssMb ?? result.PeakRssMb,8:F0} MB  trainable {result.TrainableParameters,12:N0}  {result.TrainSeconds / Math.Max(1, result.Steps):F2} s/step");
                }
            }

            var stem = Path.Combine(parse.GetValue(output)!, isQuick ? "scaling-quick" : "scaling");
            Directory.CreateDirectory(Path.GetDirectoryName(stem)!);
            var table = new MarkdownTable("backbone", "encoder params", "method", "trainable params", "training peak RSS MB", "whole-run peak RSS MB", "s / step");
            foreach (var (config, parameters, r) in results)
                table.Add(config, parameters, r.Method, r.TrainableParameters, r.TrainPeakRssMb ?? double.NaN, r.PeakRssMb, r.TrainSeconds / Math.Max(1, r.Steps));
            var byMethod = results.GroupBy(x => x.R.Method).ToList();
            Charts.Lines(stem + "-memory.png", $"Peak training memory (batch {b}, {s} tokens)", "encoder parameters (millions)", "peak RSS (MB)",
                byMethod.Select(g => (g.Key, g.Select(x => x.EncoderParameters / 1e6).ToArray(), g.Select(x => x.R.TrainPeakRssMb ?? x.R.PeakRssMb).ToArray())).ToList());
            Charts.Lines(stem + "-trainable.png", "Trainable parameters", "encoder parameters (millions)", "trainable parameters (log scale)",
                byMethod.Select(g => (g.Key, g.Select(x => x.EncoderParameters / 1e6).ToArray(), g.Select(x => (double)x.R.TrainableParameters).ToArray())).ToList(),
                logY: true);
            var name = Path.GetFileName(stem);
            var markdown = new StringBuilder()
                .AppendLine("# Scaling with backbone size (random weights)").AppendLine()
                .AppendLine($"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores; batch {b}, sequence length {s}, " +
                            "synthetic tokens; one process per row. Training peak RSS is the process's VmHWM after the backbone was loaded " +
                            "and the counter reset; whole-run peak includes loading (and generating) the random checkpoint. Command:")
                .AppendLine().AppendLine("```").AppendLine("dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value))).AppendLine("```").AppendLine()
                .AppendLine(table.ToMarkdown())
                .AppendLine($"![memory]({name}-memory.png)").AppendLine()
                .AppendLine($"![trainable]({name}-trainable.png)");
            await File.WriteAllTextAsync(stem + ".md", markdown.ToString(), ct);
            await File.WriteAllTextAsync(stem + ".csv", table.ToCsv(), ct);
            Console.WriteLine(markdown);
            return 0;
        });
        return command;
    }
}
