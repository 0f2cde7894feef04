using System.CommandLine;
using Read.Bench.Measurement;
using Read.Bench.Reporting;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Bench.Speed;

/// <summary>
/// `read-bench side-network`: the recurrence over layers for B·S sequences, forward + backward, run three ways — one fused
/// nn.GRU call sequence-first, the same call batch-first (what ReadSideNetwork does), and a C# loop over layers with
/// nn.GRUCell — so the choice is a measurement, not an assumption.
/// </summary>
internal static class SideNetworkProfileCommand
{
    public static Command Create()
    {
        var sequences = new Option<int>("--sequences") { Description = "B·S: positions in one training batch.", DefaultValueFactory = _ => 2048 };
        var layers = new Option<int>("--layers") { DefaultValueFactory = _ => 6 };
        var width = new Option<int>("--width") { DefaultValueFactory = _ => 384 };
        var r = new Option<int>("--r") { DefaultValueFactory = _ => 64 };
        var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 7 };
        var output = new Option<string>("--out") { DefaultValueFactory = _ => "docs/benchmarks" };
        var command = new Command("side-network", "Profile the side network's recurrence: fused GRU (sequence-first, batch-first) against a C# loop of GRUCell.")
        {
            sequences, layers, width, r, repeats, output,
        };
        command.SetAction(async (parse, ct) =>
        {
            int n = parse.GetValue(sequences), l = parse.GetValue(layers), d = parse.GetValue(width), h = parse.GetValue(r), k = parse.GetValue(repeats);
            manual_seed(0);
            using var gru = nn.GRU(d, h);
            using var gruBatchFirst = nn.GRU(d, h, batchFirst: true);
            using var cell = nn.GRUCell(d, h);
            using var inputsSequenceFirst = randn(l, n, d); // (L, N, d)
            using var inputsBatchFirst = inputsSequenceFirst.transpose(0, 1).contiguous(); // (N, L, d)

            double Step(Func<Tensor> forward, IEnumerable<Tensor> parameters) => Timing.Median(k, () =>
            {
                using var scope = NewDisposeScope();
                foreach (var p in parameters)
                    p.grad?.zero_();
                forward().mean().backward();
            });

            var fused = Step(() => gru.call(inputsSequenceFirst).Item1.mean([0L]), gru.parameters());
            var batchFirst = Step(() => gruBatchFirst.call(inputsBatchFirst).Item1.mean([1L]), gruBatchFirst.parameters());
            var loop = Step(() =>
            {
                var state = zeros(n, h);
                var sum = zeros(n, h);
                for (var i = 0; i < l; i++)
                {
                    state = cell.call(inputsSequenceFirst[i], state);
                    sum = sum + state;
                }
                return sum / l;
            }, cell.parameters());

            var table = new MarkdownTable("implementation", "ms / step (forward + backward)", "relative to fused sequence-first");
            table.Add("nn.GRU over the layer axis, sequence-first", fused * 1000, "1.00×");
            table.Add("nn.GRU over the layer axis, batch-first (ReadSideNetwork)", batchFirst * 1000, $"{batchFirst / fused:F2}×");
            table.Add("C# loop over layers, nn.GRUCell", loop * 1000, $"{loop / fused:F2}×");
            var markdown = $"# Side-network recurrence: fused vs loop\n\nMeasured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {torch.get_num_threads()} threads: " +
                           $"{n} sequences (B·S) of {l} layers, width {d}, r = {h}, median of {k} steps after a warm-up. Command:\n\n```\n" +
                           "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', parse.Tokens.Select(t => t.Value)) + "\n```\n\n" + table.ToMarkdown();
            Directory.CreateDirectory(parse.GetValue(output)!);
            await File.WriteAllTextAsync(Path.Combine(parse.GetValue(output)!, "side-network.md"), markdown, ct);
            Console.WriteLine(markdown);
            return 0;
        });
        return command;
    }
}
