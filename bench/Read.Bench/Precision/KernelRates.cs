using System.Diagnostics;
using Read.Bench.Reporting;
using static TorchSharp.torch;

namespace Read.Bench.Precision;

/// <summary>
/// nn.functional.linear at the backbones' projection shapes, every way a frozen weight can meet its activations: both in
/// fp32, both in bf16, both in fp16, a bf16 weight widened to fp32 per call (what a resident bf16 backbone computing in
/// fp32 does), and an int8 weight with per-channel scales dequantized to fp32 per call. The variants of a shape are timed
/// in turn within each round (round-robin), so a change in the shared machine's load falls on all of them alike.
/// </summary>
internal static class KernelRates
{
    private sealed record Shape(string Name, int Tokens, int Inputs, int Outputs);

    private static readonly Shape[] Shapes =
    [
        new("MiniLM FFN up (8 × 128 tokens)", 1024, 384, 1536),
        new("Qwen2.5-0.5B MLP up (8 × 128 tokens)", 1024, 896, 4864),
        new("Llama-3.2-1B MLP up (8 × 128 tokens)", 1024, 2048, 8192),
        new("13B-class MLP up, 128 tokens", 128, 5120, 13824),
    ];

    public static MarkdownTable Measure(int rounds)
    {
        var table = new MarkdownTable("projection", "tokens × in → out", "fp32 GFLOP/s", "bf16 ×fp32", "fp16 ×fp32",
            "bf16 weight widened per call ×fp32", "int8 weight dequantized per call ×fp32");
        foreach (var shape in Shapes)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var generator = new TorchSharp.torch.Generator(0);
            var x = randn([shape.Tokens, shape.Inputs], generator: generator);
            var w = randn([shape.Outputs, shape.Inputs], generator: generator) * 0.02;
            var (xb, wb) = (x.to_type(ScalarType.BFloat16), w.to_type(ScalarType.BFloat16));
            var (xh, wh) = (x.to_type(ScalarType.Float16), w.to_type(ScalarType.Float16));
            var scale = w.abs().amax([1], keepdim: true) / 127.0;
            var q = (w / scale).round().clamp(-127, 127).to_type(ScalarType.Int8);
            Action[] variants =
            [
                () => nn.functional.linear(x, w).Dispose(),
                () => nn.functional.linear(xb, wb).Dispose(),
                () => nn.functional.linear(xh, wh).Dispose(),
                () =>
                {
                    using var widened = wb.to_type(ScalarType.Float32);
                    nn.functional.linear(x, widened).Dispose();
                },
                () =>
                {
                    using var dequantized = q.to_type(ScalarType.Float32).mul_(scale);
                    nn.functional.linear(x, dequantized).Dispose();
                },
            ];
            var seconds = RoundRobinMedians(variants, rounds);
            var gflops = 2.0 * shape.Tokens * shape.Inputs * shape.Outputs / 1e9;
            table.Add(shape.Name, $"{shape.Tokens} × {shape.Inputs} → {shape.Outputs}", gflops / seconds[0],
                seconds[0] / seconds[1], seconds[0] / seconds[2], seconds[0] / seconds[3], seconds[0] / seconds[4]);
            Console.WriteLine($"{shape.Name}: fp32 {gflops / seconds[0]:F1} GFLOP/s; ×fp32: bf16 {seconds[0] / seconds[1]:F2}, fp16 {seconds[0] / seconds[2]:F2}, " +
                              $"bf16 widened {seconds[0] / seconds[3]:F2}, int8 dequantized {seconds[0] / seconds[4]:F2}");
        }

        return table;
    }

    /// <summary>Median seconds of each action over <paramref name="rounds"/> rounds, each round running every action once in turn, after one warm-up round.</summary>
    public static double[] RoundRobinMedians(IReadOnlyList<Action> actions, int rounds)
    {
        foreach (var action in actions)
            action();
        var times = actions.Select(_ => new List<double>()).ToArray();
        for (var r = 0; r < rounds; r++)
        {
            for (var i = 0; i < actions.Count; i++)
            {
                var clock = Stopwatch.StartNew();
                actions[i]();
                times[i].Add(clock.Elapsed.TotalSeconds);
            }
        }

        return times.Select(t => t.Order().ElementAt(t.Count / 2)).ToArray();
    }
}
