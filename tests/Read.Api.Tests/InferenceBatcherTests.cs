using Read.Domain.SideNetwork;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Read.Api.Inference;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Tests;

/// <summary>
/// The cross-request batcher on the real tiny BERT with real adapter artifacts. The reference is the unbatched path
/// (<see cref="AdapterPredictor.Predict(Backbone, LoadedAdapter, IReadOnlyList{string}, IReadOnlyList{string?}?)"/>,
/// one forward per request padded to its own longest text), which shares no batching code with the batcher.
/// </summary>
public sealed class InferenceBatcherTests : IDisposable
{
    private const double Tolerance = 1e-4; // float32 rounding from a different padded width; far below any real difference
    private readonly string directory = Path.Combine(Path.GetTempPath(), "read-batcher-" + Guid.NewGuid().ToString("N"));
    private readonly BackboneRegistry registry;
    private readonly Backbone backbone;
    private readonly ServiceProvider metricsServices = new Microsoft.Extensions.DependencyInjection.ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly List<LoadedAdapter> adapters = [];

    public InferenceBatcherTests()
    {
        registry = new BackboneRegistry(new BackboneOptions { DataDirectory = directory, ImportBundledBackbones = false });
        backbone = registry.Get(BackboneRegistry.TinyBackboneId);
    }

    private InferenceBatcher Batcher(InferenceOptions options) =>
        new(Options.Create(options), new InferenceMetrics(metricsServices.GetRequiredService<IMeterFactory>()), NullLogger<InferenceBatcher>.Instance);

    private LoadedAdapter Adapter(int seed, int labels = 2, Pooling pooling = Pooling.Cls, int maxLength = 32)
    {
        var adapter = AdapterArtifact.Load(TestAdapters.Artifact(backbone, seed, labels, pooling, maxLength), backbone);
        adapters.Add(adapter);
        return adapter;
    }

    private static void AssertClose(IReadOnlyList<Prediction> expected, IReadOnlyList<Prediction> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Label, actual[i].Label);
            Assert.Equal(expected[i].Probabilities.Keys.Order(), actual[i].Probabilities.Keys.Order());
            foreach (var (label, p) in expected[i].Probabilities)
                Assert.InRange(actual[i].Probabilities[label], p - Tolerance, p + Tolerance);
        }
    }

    [Fact]
    public async Task ConcurrentRequestsOnDifferentAdapters_ShareForwardsAndMatchTheUnbatchedPath()
    {
        // Different tenants, label counts and poolings (cls reads one position, mean every real one), and different
        // text lengths, so the shared batch pads every request to a width it would not have alone.
        var work = new (string Tenant, LoadedAdapter Adapter, string[] Texts)[]
        {
            ("t1", Adapter(1), TestAdapters.Texts[..3]),
            ("t2", Adapter(2, labels: 5, pooling: Pooling.Mean), TestAdapters.Texts[2..8]),
            ("t3", Adapter(3, labels: 3), [TestAdapters.Texts[6]]),
            ("t1", Adapter(4, pooling: Pooling.Mean), TestAdapters.Texts[3..5]),
        };
        var expected = work.Select(w => AdapterPredictor.Predict(backbone, w.Adapter, w.Texts, null)).ToList();
        // The gather window is long, so all four queue before the first forward.
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 500 });

        var results = await Task.WhenAll(work.Select(w => batcher.PredictAsync(w.Tenant, backbone, w.Adapter, w.Texts, null, default)));

        Assert.Single(results.Select(r => r.Batch).Distinct()); // one forward served them all
        Assert.Equal(1, batcher.BatchesRun);
        for (var i = 0; i < work.Length; i++)
            AssertClose(expected[i], results[i].Predictions);
    }

    [Fact]
    public async Task RequestLargerThanTheRowCap_IsSplitAndMatchesTheUnbatchedPath()
    {
        var adapter = Adapter(5, labels: 4);
        var texts = Enumerable.Range(0, 11).Select(i => TestAdapters.Texts[i % TestAdapters.Texts.Length] + $" #{i}").ToArray();
        var expected = AdapterPredictor.Predict(backbone, adapter, texts, null);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 4, MaxBatchDelayMs = 0 });

        var result = await batcher.PredictAsync("t1", backbone, adapter, texts, null, default);

        Assert.Equal(3, batcher.BatchesRun); // 4 + 4 + 3 rows
        AssertClose(expected, result.Predictions);
    }

    [Fact]
    public async Task TokenCap_LimitsRowsPerForward()
    {
        var adapter = Adapter(6, maxLength: 32);
        var texts = TestAdapters.Texts[..6];
        // 64 tokens at max_length 32: two rows per forward.
        await using var batcher = Batcher(new InferenceOptions { MaxBatchTokens = 64, MaxBatchDelayMs = 0 });

        var result = await batcher.PredictAsync("t1", backbone, adapter, texts, null, default);

        Assert.Equal(3, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(backbone, adapter, texts, null), result.Predictions);
    }

    [Fact]
    public async Task AdaptersThatTokenizeDifferently_GetSeparateForwardsWithCorrectResults()
    {
        var short16 = Adapter(7, maxLength: 8);
        var long32 = Adapter(8, maxLength: 32);
        var texts = TestAdapters.Texts[..4];
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 300 });

        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", backbone, short16, texts, null, default),
            batcher.PredictAsync("t2", backbone, long32, texts, null, default));

        Assert.Equal(2, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(backbone, short16, texts, null), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(backbone, long32, texts, null), results[1].Predictions);
    }

    [Fact]
    public async Task FloodFromOneTenant_DoesNotStarveAnother()
    {
        var adapter = Adapter(9);
        var texts = TestAdapters.Texts[..2];
        // One request per forward, so the order of service is the order of batches.
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 2, MaxBatchDelayMs = 0 });

        // PredictAsync queues before it returns, so the flood is all queued ahead of the other tenant's request.
        var flood = Enumerable.Range(0, 30).Select(_ => batcher.PredictAsync("flooder", backbone, adapter, texts, null, default)).ToList();
        var before = batcher.BatchesRun;
        var other = await batcher.PredictAsync("other", backbone, adapter, texts, null, default);
        var floodBatches = (await Task.WhenAll(flood)).Select(r => r.Batch).ToList();

        // First-come-first-served would put it behind all 30; round-robin serves it within two forwards of arriving
        // (the one running, then the flooder's turn, then its own).
        Assert.InRange(other.Batch - before, 0, 2);
        Assert.True(floodBatches.Count(b => b > other.Batch) >= 25, $"flood batches: {string.Join(",", floodBatches)}; other: {other.Batch}");
    }

    [Fact]
    public async Task TenantArrivingBesideABacklog_GoesFirst_AndTheBacklogsShareOfEachBatchIsCapped()
    {
        var adapter = Adapter(19);
        var floodTexts = Enumerable.Range(0, 200).Select(i => TestAdapters.Texts[i % TestAdapters.Texts.Length]).ToArray();
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 0, MaxTenantBatchRows = 4 });
        Task<BatchedPrediction> flood;
        await using (var forward = await LongForward.StartAsync(backbone))
        {
            // The flooder is alone: its first batch is a whole one (64 rows), stuck in the long forward; the rest is its backlog.
            flood = batcher.PredictAsync("flooder", backbone, adapter, floodTexts, null, default);
            await WaitUntilAsync(() => batcher.BatchesRun == 1);
            var light = batcher.PredictAsync("light", backbone, adapter, ["a light request"], null, default);
            forward.Release();

            // It used to queue behind the backlog's next 64-row part, a whole batch later.
            Assert.Equal(2, (await light).Batch);
        }

        // For a second after the light tenant was answered, the flood's batches carry 4 of its rows each (its last 132
        // rows take 33 such batches, or full ones once the second is over): whole 64-row parts would be done by batch 4.
        var result = await flood;
        Assert.Equal(200, result.Predictions.Length);
        Assert.True(result.Batch >= 12, $"the flood ended in batch {result.Batch}");
        AssertClose(AdapterPredictor.Predict(backbone, adapter, floodTexts, null), result.Predictions);
    }

    // Texts longer than max_length (32): cut to one length, so sorted rows keep their order and a part of 2 fills one
    // forward of 2, as a flood's 20,000-character texts do at the load test's max_length.
    private static string[] LongTexts(int count) =>
        Enumerable.Range(0, count).Select(i => $"#{i}: {TestAdapters.Texts[i % TestAdapters.Texts.Length]}, " + string.Join(" ", Enumerable.Repeat(TestAdapters.Texts[3], 3))).ToArray();

    [Fact]
    public async Task TenantArrivingDuringABackloggedBatch_StopsItAtTheNextForward_AndTheResumedPartsMatchTheUnbatchedPath()
    {
        // The flooder's request is 8 parts of 2 rows; its first batch takes 4 of them (4 forwards of 2 rows), and the
        // light request arrives while the first forward waits on the backbone. The batch used to run its 4 forwards
        // before the light request was served; now it stops after the first, hands back the 3 parts it had not started
        // and takes them up again later, computing nothing twice.
        var adapter = Adapter(41);
        var floodTexts = LongTexts(16);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 8, MaxTenantBatchRows = 2, MaxForwardRows = 2, MaxBatchDelayMs = 0 });
        Task<BatchedPrediction> flood, light;
        long before;
        await using (var forward = await LongForward.StartAsync(backbone))
        {
            flood = batcher.PredictAsync("flooder", backbone, adapter, floodTexts, null, default);
            await WaitUntilAsync(() => batcher.BatchesRun == 1); // its first forward waits on the lock
            before = backbone.ForwardCalls;
            light = batcher.PredictAsync("light", backbone, adapter, ["a light request"], null, default);
            forward.Release();
        }

        Assert.Equal(2, (await light).Batch);
        var result = await flood;
        Assert.Equal(3, batcher.PartsDeferred);
        Assert.Equal(8 + 1, backbone.ForwardCalls - before); // the flood's 8 forwards of 2 rows and the light one: none again
        AssertClose(AdapterPredictor.Predict(backbone, adapter, floodTexts, null), result.Predictions);
    }

    [Fact]
    public async Task CancelledRequest_WhosePartAStoppedBatchHandsBack_LeavesInsteadOfRunningAgain()
    {
        var adapter = Adapter(42);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 8, MaxTenantBatchRows = 2, MaxForwardRows = 2, MaxBatchDelayMs = 0 });
        using var cancel = new CancellationTokenSource();
        Task<BatchedPrediction> flood, light;
        long before;
        await using (var forward = await LongForward.StartAsync(backbone))
        {
            flood = batcher.PredictAsync("flooder", backbone, adapter, LongTexts(16), null, cancel.Token);
            await WaitUntilAsync(() => batcher.BatchesRun == 1);
            before = backbone.ForwardCalls;
            await cancel.CancelAsync(); // the 4 queued parts leave; the 4 in the batch cannot yet
            light = batcher.PredictAsync("light", backbone, adapter, ["a light request"], null, default);
            forward.Release();
        }

        Assert.Single((await light).Predictions);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => flood);
        // Handed back by the stopped batch, the cancelled request's 3 parts were dropped, not queued again for a third batch.
        Assert.Equal(3, batcher.PartsDeferred);
        Assert.Equal(2, batcher.BatchesRun);
        Assert.Equal(2, backbone.ForwardCalls - before);
    }

    [Fact]
    public void SharedForward_RunsNonDeferrableRowsFirst_AndAnswersEachSegmentAsItsRowsAreThrough()
    {
        var a = Adapter(43);
        var b = Adapter(44, labels: 3, pooling: Pooling.Mean);
        var flood = TestAdapters.Texts; // 8 rows: 4 forwards of 2
        string[] light = ["a light request", "and another one"];
        string[] lone = ["just one"];
        var answered = new List<(int Segment, long Forwards)>();
        var before = backbone.ForwardCalls;
        var control = new SharedForwardControl { Answered = (n, _) => answered.Add((n, backbone.ForwardCalls - before)) };
        var timings = new SharedForwardTimings();

        var outcomes = SharedForwardPredictor.PredictEach(backbone,
            [new SharedForwardPredictor.Segment(a, flood, null, Deferrable: true), new SharedForwardPredictor.Segment(b, light, null), new SharedForwardPredictor.Segment(a, lone, null)],
            timings, forwardRows: 2, control: control);

        // The two light segments' 3 rows take the first 2 forwards and are answered by then; the deferrable segment,
        // listed first, runs last and is answered after all 6.
        Assert.Equal(3, answered.Count);
        Assert.Equal(0, answered[^1].Segment);
        Assert.Equal(6, answered[^1].Forwards);
        Assert.All(answered.Take(2), x => Assert.InRange(x.Forwards, 1, 2));
        Assert.Equal(6, timings.Forwards);
        AssertClose(AdapterPredictor.Predict(backbone, a, flood, null), outcomes[0].Predictions!);
        AssertClose(AdapterPredictor.Predict(backbone, b, light, null), outcomes[1].Predictions!);
        AssertClose(AdapterPredictor.Predict(backbone, a, lone, null), outcomes[2].Predictions!);
    }

    [Fact]
    public void SharedForward_StoppedBetweenDeferrableForwards_HandsBackOnlyTheUnfinishedSegments()
    {
        var a = Adapter(45);
        string[] light = ["a light request", "and another one", "and a third"];
        var first = Enumerable.Repeat("the very same words", 2).ToArray(); // one length: sorted, they keep their order
        var second = Enumerable.Repeat("the very same words", 4).ToArray();
        var asked = 0;
        var before = backbone.ForwardCalls;
        var control = new SharedForwardControl { ShouldYield = () => ++asked > 0 };
        var timings = new SharedForwardTimings();

        var outcomes = SharedForwardPredictor.PredictEach(backbone,
            [new SharedForwardPredictor.Segment(a, light, null), new SharedForwardPredictor.Segment(a, first, null, Deferrable: true),
                new SharedForwardPredictor.Segment(a, second, null, Deferrable: true)],
            timings, forwardRows: 2, control: control);

        // Two forwards for the light rows (never asked between them), one deferrable forward (it always runs), then asked once.
        Assert.Equal(1, asked);
        Assert.Equal(3, backbone.ForwardCalls - before);
        Assert.Equal((3, 5), (timings.Forwards, timings.PlannedForwards));
        AssertClose(AdapterPredictor.Predict(backbone, a, light, null), outcomes[0].Predictions!);
        AssertClose(AdapterPredictor.Predict(backbone, a, first, null), outcomes[1].Predictions!);
        Assert.True(outcomes[2].IsDeferred);
    }

    [Fact]
    public void SharedForward_IsNotStoppedWhereItWouldThrowComputedRowsAway()
    {
        // Two deferrable segments of three lengths each: sorted, every forward of 2 rows holds one row of each, so no
        // boundary leaves them whole, and the batch is never offered a stop (it used to be, and lost the rows it had).
        var a = Adapter(46);
        string[] first = ["short", "a text of middling length here", "a much longer text than the others, with many more words in it"];
        string[] second = ["brief", "another text of middling length", "and one more long text that goes on and on for quite a while"];
        var asked = 0;
        var timings = new SharedForwardTimings();

        var outcomes = SharedForwardPredictor.PredictEach(backbone,
            [new SharedForwardPredictor.Segment(a, first, null, Deferrable: true), new SharedForwardPredictor.Segment(a, second, null, Deferrable: true)],
            timings, forwardRows: 2, control: new SharedForwardControl { ShouldYield = () => ++asked > 0 });

        Assert.Equal(0, asked);
        Assert.Equal(3, timings.Forwards);
        AssertClose(AdapterPredictor.Predict(backbone, a, first, null), outcomes[0].Predictions!);
        AssertClose(AdapterPredictor.Predict(backbone, a, second, null), outcomes[1].Predictions!);
    }

    [Fact]
    public async Task Admission_IsBoundedAndGivenBackOnce()
    {
        await using var batcher = Batcher(new InferenceOptions { MaxQueuedRequests = 2 });

        var first = batcher.Admit();
        using var second = batcher.Admit();
        Assert.Equal(2, batcher.QueueDepth);
        Assert.Throws<InferenceQueueFullException>(() => batcher.Admit());
        Assert.Equal(2, batcher.QueueDepth); // a refusal takes no place

        first.Dispose();
        first.Dispose(); // twice gives back one place, not two
        Assert.Equal(1, batcher.QueueDepth);
        using var third = batcher.Admit();
        Assert.Equal(2, batcher.QueueDepth);
    }

    [Fact]
    public async Task CancelledRequest_BehindAnotherOfItsTenant_LeavesTheQueueAtOnce()
    {
        var adapter = Adapter(15);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 2, MaxBatchDelayMs = 0 });
        await using var forward = await LongForward.StartAsync(backbone);

        // One request runs (stuck in the forward); "t2" queues two behind it, and the second of them is cancelled. Only the
        // head of a tenant's queue used to be checked, after the running forward ended: the second waited for both.
        var running = batcher.PredictAsync("t1", backbone, adapter, ["a"], null, default);
        await WaitUntilAsync(() => batcher.BatchesRun == 1); // its forward started, and waits on the lock
        using var cancel = new CancellationTokenSource();
        var head = batcher.PredictAsync("t2", backbone, adapter, ["b"], null, default);
        var behind = batcher.PredictAsync("t2", backbone, adapter, ["c"], null, cancel.Token);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => behind.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.False(running.IsCompleted);
        Assert.False(head.IsCompleted);
        forward.Release();
        Assert.Single((await running).Predictions);
        Assert.Single((await head).Predictions);
    }

    [Fact]
    public async Task CancelledRequest_WithAPartInARunningForward_ReturnsOnlyOnceThatPartIsDone()
    {
        // The caller's lease must outlive every use of its adapter: a part already in a forward cannot be called back.
        var adapter = Adapter(16);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchRows = 2, MaxBatchDelayMs = 0 });
        await using var forward = await LongForward.StartAsync(backbone);
        using var cancel = new CancellationTokenSource();

        var split = batcher.PredictAsync("t1", backbone, adapter, TestAdapters.Texts[..6], null, cancel.Token); // parts of 2, 2 and 2 rows
        await WaitUntilAsync(() => batcher.BatchesRun == 1); // the first part's forward started, and waits on the lock
        await cancel.CancelAsync();
        await Task.Delay(300);

        Assert.False(split.IsCompleted);
        forward.Release();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => split);
        Assert.Equal(1, batcher.BatchesRun); // the queued parts never ran
    }

    [Fact]
    public async Task AfterDispose_NewAndQueuedRequestsFailAsUnavailable_WithoutHanging()
    {
        var adapter = Adapter(17);
        var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 60_000 });
        var queued = batcher.PredictAsync("t1", backbone, adapter, ["a"], null, default); // waits in the gather window

        await batcher.DisposeAsync();

        await Assert.ThrowsAsync<InferenceUnavailableException>(() => queued.WaitAsync(TimeSpan.FromSeconds(10)));
        // A lane created after the batcher stopped used to start on its disposed token and never answer.
        var other = Adapter(18);
        await Assert.ThrowsAsync<InferenceUnavailableException>(() => batcher.PredictAsync("t1", backbone, other, ["b"], null, default).WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task BatchingOff_RunsEachRequestAloneWithTheSameResults()
    {
        var a = Adapter(11);
        var b = Adapter(12, labels: 3);
        await using var batcher = Batcher(new InferenceOptions { Batching = false });

        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", backbone, a, TestAdapters.Texts[..3], null, default),
            batcher.PredictAsync("t2", backbone, b, TestAdapters.Texts[3..], null, default));

        Assert.Equal(2, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(backbone, a, TestAdapters.Texts[..3], null), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(backbone, b, TestAdapters.Texts[3..], null), results[1].Predictions);
    }

    [Fact]
    public async Task TextPairs_MixedWithSingleTexts_MatchTheUnbatchedPath()
    {
        var a = Adapter(13);
        var b = Adapter(14, pooling: Pooling.Mean);
        string[] texts = ["is it good?", "was it long?"];
        string?[] pairs = ["it was wonderful", null];
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 300 });

        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", backbone, a, texts, pairs, default),
            batcher.PredictAsync("t2", backbone, b, TestAdapters.Texts[..2], null, default));

        Assert.Equal(1, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(backbone, a, texts, pairs), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(backbone, b, TestAdapters.Texts[..2], null), results[1].Predictions);
    }

    [Fact]
    public async Task OnADecoderBackbone_ConcurrentRequestsMatchTheUnbatchedPath()
    {
        // Decoders pad after the real tokens and attend causally: a row's last-token state must not see its padding.
        var checkpoint = Path.Combine(directory, "tiny-llama");
        Read.Domain.Backbones.Llama.TinyLlamaCheckpoint.Write(checkpoint, new Read.Domain.Backbones.Llama.TinyLlamaCheckpoint.Options(), seed: 3);
        using var llamas = new BackboneRegistry(new BackboneOptions
        {
            DataDirectory = directory, ImportBundledBackbones = false, GenerateTinyBackbone = false,
            Checkpoints = new Dictionary<string, string> { ["tiny-llama"] = checkpoint },
        });
        var llama = llamas.Get("tiny-llama");
        using var a = AdapterArtifact.Load(TestAdapters.Artifact(llama, 21, pooling: Pooling.Last), llama);
        using var b = AdapterArtifact.Load(TestAdapters.Artifact(llama, 22, labels: 4, pooling: Pooling.Mean), llama);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 300 });

        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", llama, a, TestAdapters.Texts[..2], null, default),
            batcher.PredictAsync("t2", llama, b, TestAdapters.Texts[2..], null, default));

        Assert.Equal(1, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(llama, a, TestAdapters.Texts[..2], null), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(llama, b, TestAdapters.Texts[2..], null), results[1].Predictions);
    }

    [Fact]
    public async Task OneAdaptersFailingSideNetwork_FailsOnlyItsOwnCallers()
    {
        // A side network that throws (here: disposed, as a lease bug would leave it) shares the batch with a sound one:
        // the sound adapter's caller still gets its predictions; only the broken adapter's caller gets the error.
        var sound = Adapter(31);
        var broken = AdapterArtifact.Load(TestAdapters.Artifact(backbone, 32, 2, Pooling.Cls, 32), backbone);
        broken.Dispose();
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 500 });

        var good = batcher.PredictAsync("t1", backbone, sound, TestAdapters.Texts[..3], null, default);
        var bad = batcher.PredictAsync("t2", backbone, broken, TestAdapters.Texts[3..5], null, default);

        AssertClose(AdapterPredictor.Predict(backbone, sound, TestAdapters.Texts[..3], null), (await good).Predictions);
        var error = await Assert.ThrowsAsync<ObjectDisposedException>(() => bad);
        Assert.Equal(typeof(LoadedAdapter).FullName, error.ObjectName); // the disposed side network, not some other failure
        Assert.Equal(1, batcher.BatchesRun); // they did share the forward
    }

    [Fact]
    public async Task OnADecoderBackbone_LengthSortedForwardsOverManyRows_MatchTheUnbatchedPath()
    {
        // More rows than one forward holds (3 per forward here, 16 rows in the batch): the union runs as several
        // length-sorted forwards whose states go back in row order, and a decoder's last-token and mean heads must still
        // read exactly their own rows' real tokens.
        var checkpoint = Path.Combine(directory, "tiny-llama-sorted");
        Read.Domain.Backbones.Llama.TinyLlamaCheckpoint.Write(checkpoint, new Read.Domain.Backbones.Llama.TinyLlamaCheckpoint.Options(), seed: 4);
        using var llamas = new BackboneRegistry(new BackboneOptions
        {
            DataDirectory = directory, ImportBundledBackbones = false, GenerateTinyBackbone = false,
            Checkpoints = new Dictionary<string, string> { ["tiny-llama"] = checkpoint },
        });
        var llama = llamas.Get("tiny-llama");
        using var a = AdapterArtifact.Load(TestAdapters.Artifact(llama, 23, pooling: Pooling.Last), llama);
        using var b = AdapterArtifact.Load(TestAdapters.Artifact(llama, 24, labels: 3, pooling: Pooling.Mean), llama);
        var first = TestAdapters.Texts.Concat(TestAdapters.Texts.Select(t => t + ", said nobody")).ToArray(); // 16 rows of many lengths
        var second = TestAdapters.Texts.Reverse().ToArray();
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 500, MaxForwardRows = 3 });

        var forwardsBefore = llama.ForwardCalls;
        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", llama, a, first, null, default),
            batcher.PredictAsync("t2", llama, b, second, null, default));
        var forwards = llama.ForwardCalls - forwardsBefore;

        Assert.Equal(1, batcher.BatchesRun);
        Assert.Equal(8, forwards); // the batcher's own forwards: 24 rows, 3 per forward (MaxForwardRows)
        AssertClose(AdapterPredictor.Predict(llama, a, first, null), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(llama, b, second, null), results[1].Predictions);
    }

    [Fact]
    public async Task LengthSortedForwardsInsideABatch_MatchTheUnbatchedPath()
    {
        // Two rows per forward: the batch's union (texts of several lengths, cls and mean heads) runs as several
        // length-sorted forwards whose states are put back in row order; each caller must still get its lone result.
        var a = Adapter(33);
        var b = Adapter(34, labels: 4, pooling: Pooling.Mean);
        await using var batcher = Batcher(new InferenceOptions { MaxBatchDelayMs = 500, MaxForwardRows = 2 });

        var results = await Task.WhenAll(
            batcher.PredictAsync("t1", backbone, a, TestAdapters.Texts[..5], null, default),
            batcher.PredictAsync("t2", backbone, b, TestAdapters.Texts[2..], null, default));

        Assert.Equal(1, batcher.BatchesRun);
        AssertClose(AdapterPredictor.Predict(backbone, a, TestAdapters.Texts[..5], null), results[0].Predictions);
        AssertClose(AdapterPredictor.Predict(backbone, b, TestAdapters.Texts[2..], null), results[1].Predictions);
        var timings = new SharedForwardTimings();
        SharedForwardPredictor.PredictEach(backbone, [new SharedForwardPredictor.Segment(a, TestAdapters.Texts, null)], timings, forwardRows: 2);
        Assert.True(timings.Forwards > 1, $"{timings.Forwards} forwards"); // the sorted path did run
        Assert.True(timings.PaddedTokens <= (long)TestAdapters.Texts.Length * timings.Width);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 500 && !condition(); i++)
            await Task.Delay(20);
        Assert.True(condition(), "timed out waiting");
    }

    public void Dispose()
    {
        foreach (var adapter in adapters)
            adapter.Dispose();
        metricsServices.Dispose();
        registry.Dispose();
        if (Directory.Exists(directory))
            Directory.Delete(directory, recursive: true);
    }
}
