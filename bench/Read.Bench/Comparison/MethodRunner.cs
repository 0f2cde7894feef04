using System.Text.Json;
using Read.Bench.Measurement;
using Read.Bench.Methods;

namespace Read.Bench.Comparison;

/// <summary>
/// Runs `read-bench method …` as a child process — one process per method, so each peak RSS and CPU time is that
/// method's alone — and parses its RESULT line.
/// </summary>
internal static class MethodRunner
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public static async Task<MethodResultLine> RunAsync(IReadOnlyList<string> methodArguments, CancellationToken ct)
    {
        var outcome = await BenchChild.RunAsync(["method", .. methodArguments], "RESULT ", echoStderr: false, ct);
        if (!outcome.Succeeded)
            throw new InvalidOperationException($"method run failed ({outcome.Failure})");
        return JsonSerializer.Deserialize<MethodResultLine>(outcome.Result!, Json)!;
    }
}
