using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Read.Bench.Measurement;
using Read.Bench.Reporting;

namespace Read.Bench.Decoders;

/// <summary>
/// `read-bench decoders`: READ vs LoRA vs full fine-tuning on Llama-shaped random checkpoints (Qwen2.5-0.5B and
/// Llama-3.2-1B configs), one child process per (shape, method) point: training peak RSS, CPU seconds per step and per
/// job, trainable parameters, READ's precompute tokens/s and its share of the matmul rate. Points whose estimated
/// memory exceeds --memory-limit-gb are not run; their row says what they would need.
/// </summary>
internal static class DecodersCommand
{
    private static readonly string[] DefaultMethods = ["full", "lora", "read", "read-freed"];

    public static Command Create()
    {
        var shapes = new Option<string[]>("--shapes") { Description = "Shapes, comma-separated (default qwen2.5-0.5b,llama-3.2-1b).", AllowMultipleArgumentsPerToken = true };
        var methods = new Option<string[]>("--methods") { Description = "Methods (default full,lora,read,read-freed).", AllowMultipleArgumentsPerToken = true };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 4 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 8 };
        var dtype = new Option<string>("--dtype") { Description = "What the backbone computes in: fp32 (default) or bf16.", DefaultValueFactory = _ => "fp32" };
        var storage = new Option<string>("--storage") { Description = "Checkpoint storage dtype: BF16 (default) or F32.", DefaultValueFactory = _ => "BF16" };
        var pooling = new Option<string>("--pooling") { Description = "READ pooling: last (default) or mean.", DefaultValueFactory = _ => "last" };
        var limit = new Option<double>("--memory-limit-gb") { Description = "Skip points estimated above this (default 18).", DefaultValueFactory = _ => 18 };
        var data = new Option<string>("--data") { Description = "Scratch directory for checkpoints and caches (deleted afterwards unless --keep).",
            DefaultValueFactory = _ => Path.Combine(Path.GetTempPath(), "read-bench-decoders") };
        var keep = new Option<bool>("--keep") { Description = "Keep the generated checkpoints." };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: tiny-llama and tiny-qwen2 shapes (same methods and steps, ~20 s); writes decoders-quick.md." };
        var command = new Command("decoders", "READ vs LoRA vs full fine-tuning on Llama-family decoder shapes (random weights), one process per point.")
        {
            shapes, methods, batch, maxLength, steps, dtype, storage, pooling, limit, data, keep, output, quick,
        };
        command.Subcommands.Add(PointCommand());
        command.SetAction(async (parse, ct) =>
        {
            var isQuick = parse.GetValue(quick);
            var selectedShapes = Split(parse.GetValue(shapes)) is { Count: > 0 } sh ? sh : isQuick ? ["tiny-llama", "tiny-qwen2"] : ["qwen2.5-0.5b", "llama-3.2-1b"];
            var selectedMethods = Split(parse.GetValue(methods)) is { Count: > 0 } me ? me : [.. DefaultMethods];
            var settings = new RunSettings(parse.GetValue(batch), parse.GetValue(maxLength), parse.GetValue(steps),
                parse.GetValue(dtype)!, parse.GetValue(storage)!, parse.GetValue(pooling)!, parse.GetValue(limit));
            var scratch = Path.GetFullPath(parse.GetValue(data)!);
            var rows = new List<Row>();
            try
            {
                foreach (var name in selectedShapes)
                {
                    var shape = DecoderShape.Find(name);
                    var directory = Path.Combine(scratch, "checkpoints", shape.Name + "-" + settings.Storage.ToLowerInvariant());
                    var cache = Path.Combine(scratch, "cache", shape.Name);
                    var clock = Stopwatch.StartNew();
                    Console.WriteLine($"== {shape.Name}: {shape.Parameters / 1e6:F1}M parameters ({(shape.Parameters - shape.EmbeddingParameters) / 1e6:F1}M outside the embedding)");
                    if (RandomDecoderCheckpoint.EnsureWritten(directory, shape, settings.Storage, seed: 0))
                        Console.WriteLine($"  wrote {directory} in {clock.Elapsed.TotalSeconds:F0} s ({DirectoryBytes(directory) / 1e9:F2} GB)");
                    foreach (var method in selectedMethods)
                    {
                        var weightBytes = settings.Dtype is "bf16" or "bfloat16" ? 2 : 4;
                        var estimate = shape.EstimateBytes(method, settings.Batch, settings.MaxLength, weightBytes);
                        if (estimate > settings.LimitGb * 1e9)
                        {
                            var note = $"not run: estimated ≈{estimate / 1e9:F1} GB (16 B/param fp32 weights + grads + AdamW, plus ≈{shape.ActivationBytes(settings.Batch, settings.MaxLength) / 1e9:F1} GB activations) " +
                                       $"exceeds the {settings.LimitGb:F0} GB per-process limit; does not fit in 24 GB beside the OS and other work";
                            Console.WriteLine($"  {method,-10} {note}");
                            rows.Add(new Row(shape, method, null, note, estimate));
                            continue;
                        }

                        string[] arguments =
                        [
                            "--dir", directory, "--cache", cache, "--shape", shape.Name, "--method", method,
                            "--batch", I(settings.Batch), "--max-length", I(settings.MaxLength), "--steps", I(settings.Steps),
                            "--dtype", settings.Dtype, "--pooling", settings.Pooling,
                        ];
                        var (result, error) = await RunChildAsync(arguments, ct);
                        if (result is null)
                        {
                            Console.WriteLine($"  {method,-10} FAILED: {error}");
                            rows.Add(new Row(shape, method, null, "failed: " + error, estimate));
                            continue;
                        }

                        rows.Add(new Row(shape, method, result, null, estimate));
                        Console.WriteLine($"  {method,-10} train peak {result.TrainPeakRssMb,8:F0} MB  trainable {result.TrainableParameters,13:N0}  " +
                                          $"{result.TrainCpuSeconds / result.Steps,7:F2} CPU s/step  job {result.JobCpuSeconds,7:F1} CPU s" +
                                          (result.PrecomputeGflops is { } g ? $"  precompute {result.PrecomputeTokens / result.PrecomputeSeconds:F0} tok/s, {100 * g / result.MatmulGflops:F0}% of matmul" : ""));
                    }
                }
            }
            finally
            {
                if (!parse.GetValue(keep) && Directory.Exists(scratch))
                    Directory.Delete(scratch, recursive: true);
            }

            var stem = Path.Combine(parse.GetValue(output)!, isQuick ? "decoders-quick" : "decoders");
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(stem))!);
            var (markdown, csv) = DecodersReport.Build(rows, settings, "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value)));
            await File.WriteAllTextAsync(stem + ".md", markdown, ct);
            await File.WriteAllTextAsync(stem + ".csv", csv, ct);
            Console.WriteLine(markdown);
            return rows.Any(r => r.Result is null && r.Note!.StartsWith("failed", StringComparison.Ordinal)) ? 1 : 0;
        });
        return command;
    }

    internal sealed record RunSettings(int Batch, int MaxLength, int Steps, string Dtype, string Storage, string Pooling, double LimitGb);

    internal sealed record Row(DecoderShape Shape, string Method, DecoderPointResult? Result, string? Note, double EstimateBytes);

    private static Command PointCommand()
    {
        var dir = new Option<string>("--dir") { Required = true };
        var cache = new Option<string>("--cache") { Required = true };
        var shape = new Option<string>("--shape") { Required = true };
        var method = new Option<string>("--method") { Required = true };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 4 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 8 };
        var dtype = new Option<string>("--dtype") { DefaultValueFactory = _ => "fp32" };
        var pooling = new Option<string>("--pooling") { DefaultValueFactory = _ => "last" };
        var command = new Command("point", "One (shape, method) point in this process; prints RESULT {json}. Used by `decoders`.")
        {
            dir, cache, shape, method, batch, maxLength, steps, dtype, pooling,
        };
        command.SetAction((parse, ct) => Task.FromResult(DecoderPoint.Run(new DecoderPoint.Settings(
            parse.GetValue(dir)!, parse.GetValue(cache)!, parse.GetValue(shape)!, parse.GetValue(method)!, parse.GetValue(batch),
            parse.GetValue(maxLength), parse.GetValue(steps), parse.GetValue(dtype)!, parse.GetValue(pooling)!), ct)));
        return command;
    }

    private static async Task<(DecoderPointResult? Result, string? Error)> RunChildAsync(IReadOnlyList<string> arguments, CancellationToken ct)
    {
        var outcome = await BenchChild.RunAsync(["decoders", "point", .. arguments], "RESULT ", echoStderr: true, ct, stderrTail: 600);
        return outcome.Succeeded
            ? (JsonSerializer.Deserialize<DecoderPointResult>(outcome.Result!, DecoderPoint.Json), null)
            : (null, outcome.Failure);
    }

    private static List<string> Split(string[]? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();

    private static string I(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static long DirectoryBytes(string directory) => new DirectoryInfo(directory).EnumerateFiles().Sum(f => f.Length);
}
