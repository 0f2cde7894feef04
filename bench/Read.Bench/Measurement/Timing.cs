using System.Diagnostics;

namespace Read.Bench.Measurement;

internal static class Timing
{
    /// <summary>Median seconds per call over <paramref name="repeats"/> calls, after one warm-up call.</summary>
    public static double Median(int repeats, Action action)
    {
        action();
        var times = new List<double>();
        for (var i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            times.Add(watch.Elapsed.TotalSeconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }
}
