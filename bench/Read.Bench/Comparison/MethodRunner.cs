using System.Diagnostics;
using System.Text.Json;
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
        var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true };
        // Under `dotnet read-bench.dll` the process path is the dotnet host: pass the assembly first.
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("Unknown process path.");
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            start.ArgumentList.Add(typeof(MethodRunner).Assembly.Location);
        start.ArgumentList.Add("method");
        foreach (var argument in methodArguments)
            start.ArgumentList.Add(argument);

        Console.WriteLine($"  $ read-bench method {string.Join(' ', methodArguments)}");
        using var child = Process.Start(start) ?? throw new InvalidOperationException("Could not start the method process.");
        var stderr = child.StandardError.ReadToEndAsync(ct);
        string? result = null;
        while (await child.StandardOutput.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith("RESULT ", StringComparison.Ordinal))
                result = line["RESULT ".Length..];
        }
        await child.WaitForExitAsync(ct);
        if (child.ExitCode != 0 || result is null)
            throw new InvalidOperationException($"method run failed (exit {child.ExitCode}): {Tail(await stderr)}");
        return JsonSerializer.Deserialize<MethodResultLine>(result, Json)!;
    }

    private static string Tail(string text) => text.Length <= 2000 ? text : text[^2000..];
}
