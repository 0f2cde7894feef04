using Read.Domain.Backbones.Bert;
using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert.Onnx;
using Read.Bench.Measurement;
using TorchSharp;

namespace Read.Bench.Speed;

/// <summary>`read-bench backbone`: the backbone forward's speed against this machine's matmul rate and ONNX Runtime.</summary>
internal static class BackboneSpeedCommand
{
    public static Command Create()
    {
        var backboneId = new Option<string>("--backbone") { Description = "Backbone id.", DefaultValueFactory = _ => BackboneRegistry.DefaultBackboneId };
        var batchSize = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var sequence = new Option<int>("--seq") { Description = "Tokens per example.", DefaultValueFactory = _ => 128 };
        var repeats = new Option<int>("--repeats") { Description = "Timed forwards (after one warm-up).", DefaultValueFactory = _ => 5 };
        var data = new Option<string>("--data") { Description = "Data directory the backbones are imported into.", DefaultValueFactory = _ => "data" };
        var onnxPath = new Option<string?>("--onnx") { Description = "ONNX file for the ONNX Runtime comparison (bundled backbones: their own)." };
        var command = new Command("backbone", "Time the backbone forward: GFLOP/s, share of the fp32 matmul rate, tokens/s, and ONNX Runtime on the same batch.")
        {
            backboneId, batchSize, sequence, repeats, data, onnxPath,
        };
        command.SetAction(parse =>
        {
            var id = parse.GetValue(backboneId)!;
            int b = parse.GetValue(batchSize), s = parse.GetValue(sequence), n = Math.Max(1, parse.GetValue(repeats));
            using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = parse.GetValue(data)! });
            var backbone = registry.Get(id);
            var config = ((BertModel)backbone.Model).Config; // the synthetic [CLS] … [SEP] batch below is BERT's

            var matmul = MatmulRate.MeasureGflops();
            var random = new Random(0);
            var ids = Enumerable.Range(0, b * s).Select(i => i % s == 0 ? 101L : i % s == s - 1 ? 102L : random.Next(1000, config.VocabSize)).ToArray();
            var ones = Enumerable.Repeat(1L, b * s).ToArray();
            var zeros = new long[b * s];
            using var batch = new EncodedBatch(torch.tensor(ids, [b, s]), torch.tensor(ones, [b, s]), torch.tensor(zeros, [b, s]));
            var seconds = Timing.Median(n, () =>
            {
                foreach (var h in backbone.HiddenStates(batch))
                    h.Dispose();
            });

            var tokens = (double)b * s;
            var flops = b * BackboneFlops.ForExample(backbone.Shape, BackboneFlops.DenseParameters(backbone), s);
            var gflops = flops / seconds / 1e9;

            Console.WriteLine($"backbone {id}: batch {b} x {s} tokens, {torch.get_num_threads()} threads, {n} timed forwards");
            Console.WriteLine($"{"measure",-36} {"value",12}");
            Console.WriteLine($"{"fp32 matmul 1024x1024 (GFLOP/s)",-36} {matmul,12:F1}");
            Console.WriteLine($"{"backbone forward (GFLOP/s)",-36} {gflops,12:F1}");
            Console.WriteLine($"{"ratio to matmul",-36} {gflops / matmul,12:P0}");
            Console.WriteLine($"{"TorchSharp tokens/s",-36} {tokens / seconds,12:N0}");
            var onnx = parse.GetValue(onnxPath) is { } path ? File.ReadAllBytes(path)
                : BundledBackbones.All.Any(x => x.Id == id) ? BundledBackbones.ReadResources(BundledBackbones.Find(id)).Onnx : null;
            if (onnx is not null)
            {
                using var options = new SessionOptions { IntraOpNumThreads = Environment.ProcessorCount, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
                using var session = new InferenceSession(onnx, options);
                int[] shape = [b, s];
                var inputs = new List<NamedOnnxValue>
                {
                    NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, shape)),
                    NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(ones, shape)),
                    NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(zeros, shape)),
                };
                var ortSeconds = Timing.Median(n, () =>
                {
                    using var results = session.Run(inputs, ["last_hidden_state"]);
                });
                Console.WriteLine($"{"ONNX Runtime tokens/s",-36} {tokens / ortSeconds,12:N0}");
            }

            return 0;
        });
        return command;
    }
}
