using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;

namespace Read.Bench.Load;

/// <summary>
/// The embedded Read API (SQLite + in-process training) as a child process on a loopback port, so its resident memory
/// is its own and not the load generator's. Its console output goes to a log file beside its data.
/// </summary>
internal sealed class ApiProcess : IAsyncDisposable
{
    public const string AdminKey = "load-test-admin-key-0123456789abcdef01234567";

    private readonly Process process;
    private readonly StreamWriter log;

    private ApiProcess(Process process, StreamWriter log, Uri address)
    {
        this.process = process;
        this.log = log;
        Address = address;
    }

    public Uri Address { get; }

    public int ProcessId => process.Id;

    public static async Task<ApiProcess> StartAsync(string apiDll, string dataDirectory, IReadOnlyDictionary<string, string> settings, CancellationToken ct)
    {
        if (!File.Exists(apiDll))
            throw new FileNotFoundException($"Build the API first (dotnet build src/Read.Api -c Release): {apiDll} is missing.");
        var port = FreePort();
        var environment = new Dictionary<string, string>(settings) { ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}", ["Read:AdminKey"] = AdminKey };
        var (process, log) = Launch(apiDll, dataDirectory, "api.log", environment);
        var api = new ApiProcess(process, log, new Uri($"http://127.0.0.1:{port}"));
        using var probe = new HttpClient { BaseAddress = api.Address, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"The API exited with {process.ExitCode}; see {Path.Combine(dataDirectory, "api.log")}.");
            try
            {
                if ((await probe.GetAsync("/readyz", ct)).StatusCode == HttpStatusCode.OK)
                    return api;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException) when (!ct.IsCancellationRequested)
            {
            }

            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("The API did not become ready within 3 minutes.");
            await Task.Delay(250, ct);
        }
    }

    /// <summary>
    /// Starts <c>dotnet <paramref name="dll"/></c> (the API or the worker) in Production with its data directory and
    /// <paramref name="settings"/> (configuration keys, ':' or '__'), its output appended to <paramref name="logName"/>
    /// in the data directory.
    /// </summary>
    internal static (Process Process, StreamWriter Log) Launch(string dll, string dataDirectory, string logName, IReadOnlyDictionary<string, string> settings)
    {
        if (!File.Exists(dll))
            throw new FileNotFoundException($"Build it first (dotnet build Read.sln -c Release): {dll} is missing.");
        var start = new ProcessStartInfo("dotnet", [dll])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["Read__DataDirectory"] = Path.GetFullPath(dataDirectory);
        start.Environment["Serilog__MinimumLevel__Default"] = "Warning";
        foreach (var (key, value) in settings)
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        Directory.CreateDirectory(dataDirectory);
        var log = new StreamWriter(Path.Combine(dataDirectory, logName), append: true) { AutoFlush = true };
        var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start.");
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, log);
    }

    /// <summary>Resident set size now (VmRSS), in MB.</summary>
    public double RssMb() => Measurement.ProcessStats.RssMb(process.Id);

    /// <summary>
    /// The API's Prometheus scrape (/metrics) as series name → value summed over label sets (histograms give their
    /// _sum and _count series): the load test diffs two scrapes to see where a point's time went inside the server.
    /// </summary>
    public async Task<Dictionary<string, double>> MetricsAsync(CancellationToken ct)
    {
        using var client = Client(null, 1);
        var text = await client.GetStringAsync("/metrics", ct);
        var series = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            var nameEnd = line.IndexOfAny(['{', ' ']);
            var valueStart = line.LastIndexOf('}') is var brace and >= 0 ? brace + 1 : nameEnd;
            var fields = line[valueStart..].Trim().Split(' ');
            if (nameEnd <= 0 || fields.Length == 0
                || !double.TryParse(fields[0], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var value))
                continue;
            var name = line[..nameEnd];
            // One stage per series of the stage histogram: keep the stage in the name.
            if (line.Contains("stage=\"", StringComparison.Ordinal))
                name += ":" + line.Split("stage=\"")[1].Split('"')[0];
            series[name] = series.GetValueOrDefault(name) + value;
        }

        return series;
    }

    public HttpClient Client(string? apiKey, int connections)
    {
        var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        {
            BaseAddress = Address, Timeout = TimeSpan.FromMinutes(2),
        };
        if (apiKey is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
        lock (log)
            log.Dispose();
    }
}
