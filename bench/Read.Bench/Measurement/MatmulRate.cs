using System.Diagnostics;
using static TorchSharp.torch;

namespace Read.Bench.Measurement;

/// <summary>The machine's dense float32 matmul rate: the yardstick for the backbone's achieved FLOP rate.</summary>
internal static class MatmulRate
{
    /// <summary>GFLOP/s of an n×n by n×n float32 matmul on all threads, best of a few timed rounds after a warm-up.</summary>
    public static double MeasureGflops(int n = 1024, int repeats = 10, int rounds = 3)
    {
        using var scope = NewDisposeScope();
        var a = rand(n, n);
        var b = rand(n, n);
        matmul(a, b).Dispose();
        var best = double.MaxValue;
        for (var r = 0; r < rounds; r++)
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < repeats; i++)
                matmul(a, b).Dispose();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n * repeats / best / 1e9;
    }
}
