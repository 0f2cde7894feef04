using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Read.Bench.Measurement;
using Read.Bench.Reporting;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;

namespace Read.Bench.Speed;

/// <summary>
/// `read-bench checkpoint-load`: peak resident memory of loading a Llama-shaped checkpoint (random weights in Hugging
/// Face layout, BF16 shards), one fresh process per compute dtype, against the bytes of the loaded parameters. The
/// loader's promise: the model's own copy plus one tensor chunk in flight, never whole-file byte arrays.
/// </summary>
internal static class CheckpointLoadCommand
{
    private static readonly Dictionary<string, TinyLlamaCheckpoint.Options> Shapes = new(StringComparer.Ordinal)
    {
        // Qwen2.5-0.5B's config (biases, tied embeddings), random weights.
        ["qwen2.5-0.5b"] = new() { ModelType = "qwen2", Layers = 24, HiddenSize = 896, Heads = 14, KeyValueHeads = 2, IntermediateSize = 4864, VocabSize = 151936, TieWordEmbeddings = true, MaxPositions = 4096 },
        // Llama-3.2-1B's config.
        ["llama-3.2-1b"] = new() { Layers = 16, HiddenSize = 2048, Heads = 32, KeyValueHeads = 8, IntermediateSize = 8192, VocabSize = 128256, TieWordEmbeddings = true, MaxPositions = 4096, RopeTheta = 500000 },
        ["tiny"] = new() { Layers = 2, HiddenSize = 64 },
    };

    public static Command Create()
    {
        var shape = new Option<string>("--shape") { DefaultValueFactory = _ => "qwen2.5-0.5b", Description = string.Join(", ", Shapes.Keys) };
        var dtypes = new Option<string[]>("--dtype") { AllowMultipleArgumentsPerToken = true, Description = "Compute dtypes, one process each (default float32 bfloat16)." };
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var child = new Option<string?>("--child-dir") { Hidden = true };
        var command = new Command("checkpoint-load", "Peak RSS of loading a Llama-shaped checkpoint, per compute dtype, one process each.")
        {
            shape, dtypes, data, output, child,
        };
        command.SetAction(async (parse, ct) =>
        {
            var selected = parse.GetValue(dtypes) is { Length: > 0 } d ? d : ["float32", "bfloat16"];
            if (parse.GetValue(child) is { } childDirectory)
            {
                Child(childDirectory, BackboneDtypes.Parse(selected[0]) ?? throw new ArgumentException(selected[0]));
                return;
            }

            var name = parse.GetValue(shape)!;
            var directory = Path.Combine(parse.GetValue(data)!, "bench-checkpoints", name);
            var clock = Stopwatch.StartNew();
            TinyLlamaCheckpoint.Write(directory, Shapes[name] with { StorageDtype = "BF16", Shards = 2, InitializerRange = 0.02 }, seed: 1);
            var files = Directory.GetFiles(directory, "*.safetensors");
            var fileBytes = files.Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"{name}: wrote {files.Length} BF16 shards, {fileBytes / 1e9:F2} GB, in {clock.Elapsed.TotalSeconds:F0} s");
            var table = new MarkdownTable("shape", "compute dtype", "parameters", "parameter MB", "RSS before load MB", "peak RSS MB", "peak − before MB", "(peak − before) / parameter bytes", "load s");
            foreach (var dtype in selected)
            {
                var line = await RunChildAsync(directory, dtype, ct);
                var r = JsonSerializer.Deserialize<JsonElement>(line);
                double before = r.GetProperty("rss_before_mb").GetDouble(), peak = r.GetProperty("peak_rss_mb").GetDouble(), parameterMb = r.GetProperty("parameter_mb").GetDouble();
                table.Add(name, dtype, r.GetProperty("parameters").GetInt64(), parameterMb, before, peak, peak - before,
                    ((peak - before) / parameterMb).ToString("F2", CultureInfo.InvariantCulture), r.GetProperty("load_seconds").GetDouble());
                Console.WriteLine(line);
            }

            Directory.CreateDirectory(parse.GetValue(output)!);
            var stem = Path.Combine(parse.GetValue(output)!, "checkpoint-load");
            var markdown = $"# Loading a Llama-shaped checkpoint: peak memory\n\nMeasured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores, " +
                           $"{GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1e9:F0} GB. Command:\n\n```\ndotnet run -c Release --project bench/Read.Bench -- checkpoint-load --shape {name}\n```\n\n" +
                           $"{name}: random weights written as {files.Length} BF16 shards ({fileBytes / 1e9:F2} GB) with `model.safetensors.index.json`; " +
                           "each row is a fresh process that loads them through `HuggingFaceCheckpoint.Load` (weights hash over every shard included). " +
                           "`RSS before` is the process after libtorch and the runtime are up; `peak` is VmHWM after loading. A ratio near 1 means the load held " +
                           "the model's own copy and little else; a whole-file byte array would add the file size (and fp32 widening twice that).\n\n" +
                           table.ToMarkdown();
            await File.WriteAllTextAsync(stem + ".md", markdown, ct);
            await File.WriteAllTextAsync(stem + ".csv", table.ToCsv(), ct);
            Console.WriteLine("\n" + table.ToMarkdown());
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        });
        return command;
    }

    private static void Child(string directory, BackboneDtype dtype)
    {
        // Bring libtorch up first so that "before" counts the runtime, not the checkpoint.
        using (var warm = TorchSharp.torch.ones(1)) { }
        var before = ProcessStats.RssMb();
        var clock = Stopwatch.StartNew();
        using var backbone = HuggingFaceCheckpoint.Load("bench", directory, dtype);
        var seconds = clock.Elapsed.TotalSeconds;
        var parameters = backbone.Model.parameters().Sum(p => p.numel());
        var bytes = backbone.Model.parameters().Sum(p => p.numel() * p.element_size());
        Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["dtype"] = dtype.Name(), ["parameters"] = parameters, ["parameter_mb"] = bytes / 1048576.0,
            ["rss_before_mb"] = before, ["peak_rss_mb"] = ProcessStats.PeakRssMb(), ["load_seconds"] = seconds,
        }));
    }

    private static async Task<string> RunChildAsync(string directory, string dtype, CancellationToken ct)
    {
        var outcome = await BenchChild.RunAsync(["checkpoint-load", "--child-dir", directory, "--dtype", dtype], "{", echoStderr: false, ct);
        if (!outcome.Succeeded)
            throw new InvalidOperationException($"checkpoint-load child ({dtype}) failed ({outcome.Failure})");
        return outcome.Result!;
    }
}
