using System.Diagnostics.Metrics;

namespace Read.Api.Inference;

/// <summary>
/// The predict path's instruments (meter "Read.Inference"), exported at /metrics. Request counts and latencies per
/// endpoint come from ASP.NET Core's own meter (http.server.request.duration, by route). No tenant ids in tags: a
/// scrape must not reveal who the customers are.
/// </summary>
internal sealed class InferenceMetrics
{
    public const string MeterName = "Read.Inference";

    private readonly Histogram<int> batchRows;
    private readonly Histogram<int> batchRequests;
    private readonly Histogram<double> forwardSeconds;
    private readonly Histogram<double> stageSeconds;
    private readonly Histogram<int> batchWidth;
    private readonly Histogram<double> waitSeconds;
    private readonly UpDownCounter<int> queueDepth;
    private readonly Counter<long> rejected;
    private readonly Counter<long> deferred;
    private readonly Counter<long> cacheHits;
    private readonly Counter<long> cacheMisses;
    private readonly Counter<long> cacheEvictions;

    public InferenceMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        batchRows = meter.CreateHistogram<int>("read.inference.batch.rows", "{text}", "Texts in one shared backbone forward.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        batchRequests = meter.CreateHistogram<int>("read.inference.batch.requests", "{request}", "Requests (or parts of split requests) in one shared backbone forward.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64] });
        forwardSeconds = meter.CreateHistogram<double>("read.backbone.forward.duration", "s", "Tokenization + backbone forward of one predict batch.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        // Where a batch's time goes (tokenize, forward, heads) and how wide it was padded: the load test reads these back
        // from /metrics to tell the forward's cost from the serving around it.
        stageSeconds = meter.CreateHistogram<double>("read.inference.batch.stage.duration", "s", "Time of one stage (tokenize, forward, heads) of a predict batch.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        batchWidth = meter.CreateHistogram<int>("read.inference.batch.width", "{token}", "Tokens each row of a predict batch is padded to.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [8, 16, 32, 48, 64, 128, 256, 512] });
        waitSeconds = meter.CreateHistogram<double>("read.inference.wait.duration", "s", "From admission to the start of the batch that serves a request (or its part).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        queueDepth = meter.CreateUpDownCounter<int>("read.inference.queue.depth", "{request}", "Predict requests admitted and not yet answered.");
        rejected = meter.CreateCounter<long>("read.inference.rejected", "{request}", "Predict requests refused because the queue was full (429).");
        deferred = meter.CreateCounter<long>("read.inference.deferred", "{part}", "Parts of a backlogged tenant handed back by a batch that stopped for a newly arrived tenant.");
        cacheHits = meter.CreateCounter<long>("read.adapter_cache.hits", "{lookup}", "Predicts that found their adapter loaded.");
        cacheMisses = meter.CreateCounter<long>("read.adapter_cache.misses", "{lookup}", "Predicts that had to load their adapter.");
        cacheEvictions = meter.CreateCounter<long>("read.adapter_cache.evictions", "{adapter}", "Adapters evicted to stay within the count and byte bounds.");
    }

    public void Batch(string backbone, int rows, int requests, double seconds)
    {
        var tag = new KeyValuePair<string, object?>("backbone", backbone);
        batchRows.Record(rows, tag);
        batchRequests.Record(requests, tag);
        forwardSeconds.Record(seconds, tag);
    }

    public void Stages(string backbone, double tokenize, double forward, double heads, int width)
    {
        var tag = new KeyValuePair<string, object?>("backbone", backbone);
        stageSeconds.Record(tokenize, tag, new KeyValuePair<string, object?>("stage", "tokenize"));
        stageSeconds.Record(forward, tag, new KeyValuePair<string, object?>("stage", "forward"));
        stageSeconds.Record(heads, tag, new KeyValuePair<string, object?>("stage", "heads"));
        batchWidth.Record(width, tag);
    }

    public void Waited(double seconds) => waitSeconds.Record(seconds);

    public void Queued(int delta) => queueDepth.Add(delta);

    public void Rejected() => rejected.Add(1);

    public void Deferred(int parts)
    {
        if (parts > 0)
            deferred.Add(parts);
    }

    public void CacheLookup(bool hit) => (hit ? cacheHits : cacheMisses).Add(1);

    public void Evicted() => cacheEvictions.Add(1);
}
