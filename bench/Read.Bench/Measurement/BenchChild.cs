using System.Diagnostics;
using System.Text;

namespace Read.Bench.Measurement;

/// <summary>
/// Runs a verb of this same bench binary as a child process — one process per measured point, so its peak RSS and CPU
/// time are that point's alone — and picks out the line that carries its result.
/// </summary>
internal static class BenchChild
{
    /// <summary>What a child left: its exit code, the last stdout line starting with the result prefix (prefix removed), and the tail of stderr.</summary>
    public sealed record Outcome(int ExitCode, string? Result, string StderrTail)
    {
        public bool Succeeded => ExitCode == 0 && Result is not null;

        /// <summary>Why it failed, one line: 137 is the kernel's out-of-memory kill.</summary>
        public string Failure => (ExitCode == 137 ? "killed (exit 137, likely out of memory)" : $"exit {ExitCode}") + ": " +
                                 StderrTail.ReplaceLineEndings(" ").Trim();
    }

    /// <param name="arguments">The verb and its options.</param>
    /// <param name="resultPrefix">Marks the result line ("RESULT "); a prefix of "{" keeps the brace (a bare JSON line).</param>
    /// <param name="echoStderr">Copy the child's stderr to ours as it comes (long runs), indented.</param>
    public static async Task<Outcome> RunAsync(IReadOnlyList<string> arguments, string resultPrefix, bool echoStderr, CancellationToken ct, int stderrTail = 2000)
    {
        var start = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true };
        // Under `dotnet read-bench.dll` the process path is the dotnet host: pass the assembly first.
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("Unknown process path.");
        start.FileName = self;
        if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            start.ArgumentList.Add(typeof(BenchChild).Assembly.Location);
        foreach (var argument in arguments)
            start.ArgumentList.Add(argument);

        Console.WriteLine($"  $ read-bench {string.Join(' ', arguments)}");
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"Could not start `read-bench {arguments.FirstOrDefault()}`.");
        var stderr = new StringBuilder();
        child.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            lock (stderr)
                stderr.AppendLine(e.Data);
            if (echoStderr)
                Console.Error.WriteLine("    " + e.Data);
        };
        child.BeginErrorReadLine();
        string? result = null;
        var keep = resultPrefix == "{" ? 0 : resultPrefix.Length;
        while (await child.StandardOutput.ReadLineAsync(ct) is { } line)
        {
            if (line.StartsWith(resultPrefix, StringComparison.Ordinal))
                result = line[keep..];
        }

        await child.WaitForExitAsync(ct);
        string tail;
        lock (stderr)
            tail = stderr.ToString();
        return new Outcome(child.ExitCode, result, tail.Length <= stderrTail ? tail : tail[^stderrTail..]);
    }
}
