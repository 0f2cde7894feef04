using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;

namespace Read.Bench.Load;

/// <summary>One adapter the load test predicts with: its id and the key of the tenant that owns it.</summary>
internal sealed record LoadAdapter(string Tenant, string ApiKey, string Id);

/// <summary>What one closed-loop run measured.</summary>
internal sealed record LoadResult(
    int Concurrency, double Seconds, int Requests, int Texts, IReadOnlyDictionary<int, int> ErrorsByStatus, double P50Ms, double P99Ms,
    double RssBeforeMb, double RssAfterMb)
{
    public double TextsPerSecond => Texts / Seconds;

    public string Errors => LoadErrors.Describe(ErrorsByStatus);
}

/// <summary>The keys of an errors-by-status table that are no HTTP status: the request got no answer.</summary>
internal static class LoadErrors
{
    /// <summary>Connection refused or reset.</summary>
    public const int Connection = 0;

    /// <summary>The client's timeout ran out before the answer came.</summary>
    public const int ClientTimeout = -1;

    public static string Describe(IReadOnlyDictionary<int, int> errors) => errors.Count == 0 ? "0" :
        string.Join(" ", errors.OrderBy(e => e.Key).Select(e => $"{Name(e.Key)}×{e.Value}"));

    private static string Name(int key) => key switch
    {
        Connection => "connection",
        ClientTimeout => "timeout",
        _ => key.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// A bounded closed-loop load generator: <c>concurrency</c> workers, each sending its next predict as soon as the
/// last one is answered, for a fixed time. Requests cycle through the adapters, so with 16 adapters every
/// batch the server forms mixes adapters and tenants.
/// </summary>
internal static class LoadDriver
{
    public static async Task<LoadResult> RunAsync(
        ApiProcess api, IReadOnlyList<LoadAdapter> adapters, int concurrency, int textsPerRequest, TimeSpan duration, string[] corpus,
        Action<double>? everyFiveSeconds, CancellationToken ct)
    {
        var clients = adapters.Select(a => a.ApiKey).Distinct().ToDictionary(k => k, k => api.Client(k, concurrency));
        var latencies = new List<double>[concurrency];
        var errors = new Dictionary<int, int>();
        var texts = 0;
        var requests = 0;
        var next = -1;
        var rssBefore = api.RssMb();
        var clock = Stopwatch.StartNew();
        var stop = clock.Elapsed + duration;
        using var sampler = everyFiveSeconds is null ? null : new Timer(_ => everyFiveSeconds(api.RssMb()), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5));
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async worker =>
        {
            var own = latencies[worker] = [];
            var random = new Random(worker);
            while (clock.Elapsed < stop && !ct.IsCancellationRequested)
            {
                var adapter = adapters[(int)((uint)Interlocked.Increment(ref next) % adapters.Count)];
                var body = new { inputs = Enumerable.Range(0, textsPerRequest).Select(_ => new { text = corpus[random.Next(corpus.Length)] }).ToArray(), top_k = 2 };
                var started = clock.Elapsed;
                var status = await SendAsync(() => clients[adapter.ApiKey].PostAsJsonAsync($"/v1/adapters/{adapter.Id}/predict", body, ct), ct);

                var elapsed = (clock.Elapsed - started).TotalMilliseconds;
                if (status == HttpStatusCode.OK)
                {
                    own.Add(elapsed);
                    Interlocked.Add(ref texts, textsPerRequest);
                    Interlocked.Increment(ref requests);
                }
                else
                {
                    lock (errors)
                        errors[(int)status] = errors.GetValueOrDefault((int)status) + 1;
                    if (status == HttpStatusCode.TooManyRequests)
                        await Task.Delay(50, ct); // a client honouring back-pressure, not a tight retry loop
                }
            }
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        foreach (var client in clients.Values)
            client.Dispose();
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new LoadResult(concurrency, seconds, requests, texts, errors, Percentile(all, 0.50), Percentile(all, 0.99), rssBefore, api.RssMb());
    }

    /// <summary>
    /// Sends one request and reads its answer through: its status, or <see cref="LoadErrors.Connection"/> /
    /// <see cref="LoadErrors.ClientTimeout"/> when none came. Only the run's own cancellation propagates.
    /// </summary>
    public static async Task<HttpStatusCode> SendAsync(Func<Task<HttpResponseMessage>> send, CancellationToken ct)
    {
        try
        {
            using var response = await send();
            await response.Content.ReadAsByteArrayAsync(ct);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return (HttpStatusCode)LoadErrors.Connection;
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            return (HttpStatusCode)LoadErrors.ClientTimeout; // HttpClient.Timeout: an error of the point, not the end of the run
        }
    }

    internal static double Percentile(double[] sorted, double q) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(q * sorted.Length) - 1)];
}
