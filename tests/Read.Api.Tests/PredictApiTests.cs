using Read.Domain.SideNetwork;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Tests;

/// <summary>
/// Both predict endpoints over real HTTP on the shared Postgres-mode API: the mixed-adapter endpoint, top_k, input
/// limits, delete races and /metrics. The reference for every probability is the unbatched in-process path on the
/// API's own backbone.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class PredictApiTests(PostgresServiceFixture service)
{
    private const double Tolerance = 1e-4;

    private Backbone TinyBert => service.Api.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);

    private IReadOnlyList<Prediction> Reference(byte[] artifact, IReadOnlyList<string> texts)
    {
        using var adapter = AdapterArtifact.Load(artifact, TinyBert);
        return AdapterPredictor.Predict(TinyBert, adapter, texts, null);
    }

    private static void AssertMatches(Prediction expected, JsonElement actual, int? topK = null)
    {
        Assert.Equal(expected.Label, actual.GetProperty("label").GetString());
        var probabilities = actual.GetProperty("probabilities").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        var top = expected.Probabilities.OrderByDescending(p => p.Value).Take(topK ?? 5).ToList();
        Assert.Equal(top.Select(p => p.Key), probabilities.Keys); // the k most probable, most probable first
        foreach (var (label, p) in top)
            Assert.InRange(probabilities[label], p - Tolerance, p + Tolerance);
    }

    [Fact]
    public async Task MixedPredict_AcrossAdapters_AnswersInOrderAsEachAdapterAlone()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "mixed");
        var artifacts = new[] { TestAdapters.Artifact(TinyBert, 31), TestAdapters.Artifact(TinyBert, 32, labels: 3, pooling: Pooling.Mean), TestAdapters.Artifact(TinyBert, 33, labels: 7) };
        var ids = new List<string>();
        foreach (var artifact in artifacts)
            ids.Add(await TestAdapters.PublishAsync(service.Api, tenant, artifact));
        // Interleaved: item i goes to adapter i % 3.
        var texts = TestAdapters.Texts;
        var body = new { inputs = texts.Select((t, i) => new { adapter = ids[i % 3], text = t }).ToArray(), top_k = 3 };

        var response = await client.PostAsJsonAsync("/v1/predict", body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var predictions = (await response.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
        Assert.Equal(texts.Length, predictions.Count);
        var references = artifacts.Select(a => Reference(a, texts)).ToList();
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(ids[i % 3], predictions[i].GetProperty("adapter").GetString());
            AssertMatches(references[i % 3][i], predictions[i], topK: 3);
        }
    }

    [Fact]
    public async Task MixedPredict_UnknownOrOtherTenantsAdapter_Returns404NamingTheIndex()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "mixed-404-a");
        var (_, other) = await TestTenants.CreateAsync(service.Api, "mixed-404-b");
        var mine = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 34));
        var theirs = await TestAdapters.PublishAsync(service.Api, other, TestAdapters.Artifact(TinyBert, 35));

        foreach (var stranger in new[] { theirs, "adapter-does-not-exist" })
        {
            var response = await client.PostAsJsonAsync("/v1/predict",
                new { inputs = new[] { new { adapter = mine, text = "fine" }, new { adapter = mine, text = "also fine" }, new { adapter = stranger, text = "x" } } });
            await response.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
            var problem = await response.JsonAsync();
            Assert.Equal(2, problem.GetProperty("index").GetInt32());
            Assert.Contains("inputs[2]", problem.GetProperty("detail").GetString());
        }
    }

    [Fact]
    public async Task Predict_TopK_DefaultsToFiveAndBoundsTheProbabilities()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "top-k");
        var artifact = TestAdapters.Artifact(TinyBert, 36, labels: 12);
        var id = await TestAdapters.PublishAsync(service.Api, tenant, artifact);
        string[] texts = ["the movie was good", "awful"];
        var reference = Reference(artifact, texts);

        foreach (int? k in new int?[] { null, 1, 12 })
        {
            var response = await client.PostAsJsonAsync($"/v1/adapters/{id}/predict",
                k is null ? new { inputs = texts.Select(t => new { text = t }).ToArray() } : (object)new { inputs = texts.Select(t => new { text = t }).ToArray(), top_k = k });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var predictions = (await response.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
            for (var i = 0; i < texts.Length; i++)
                AssertMatches(reference[i], predictions[i], topK: k ?? 5);
        }
    }

    [Theory]
    [InlineData("{}", "missing_inputs")]
    [InlineData("{\"inputs\":[]}", "missing_inputs")]
    [InlineData("{\"inputs\":null}", "missing_inputs")]
    [InlineData("{\"inputs\":[null]}", "missing_text")]
    [InlineData("{\"inputs\":[{\"text\":null}]}", "missing_text")]
    [InlineData("{\"inputs\":[{\"text\":5}]}", "invalid_request")]
    [InlineData("{\"inputs\":[\"just a string\"]}", "invalid_request")]
    [InlineData("{\"inputs\":[{\"text\":\"a\"}],\"top_k\":0}", "invalid_top_k")]
    [InlineData("{\"inputs\":[{\"text\":\"a\"}],\"top_k\":1001}", "invalid_top_k")]
    [InlineData("{\"inputs\":[{\"text\":\"a\"}],\"top_k\":\"3\"}", "invalid_request")]
    public async Task BothPredictEndpoints_BadInput_Return400WithAStableCode(string body, string code)
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "predict-bad");
        var id = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 37));
        using var single = new StringContent(body, Encoding.UTF8, "application/json");
        await (await client.PostAsync($"/v1/adapters/{id}/predict", single)).AssertProblemAsync(HttpStatusCode.BadRequest, code);
        // The same body for the mixed endpoint, every object naming the adapter.
        var mixed = body.Replace("{\"text\"", $"{{\"adapter\":\"{id}\",\"text\"", StringComparison.Ordinal);
        using var content = new StringContent(mixed, Encoding.UTF8, "application/json");
        await (await client.PostAsync("/v1/predict", content)).AssertProblemAsync(HttpStatusCode.BadRequest, code);
    }

    [Fact]
    public async Task BothPredictEndpoints_TooManyInputsOrNoAdapter_Return400()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "predict-many");
        var id = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 38));
        var max = new Read.Domain.Configuration.ReadOptions().MaxPredictBatch;
        await (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", new { inputs = Enumerable.Repeat(new { text = "a" }, max + 1) }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "too_many_inputs");
        await (await client.PostAsJsonAsync("/v1/predict", new { inputs = Enumerable.Repeat(new { adapter = id, text = "a" }, max + 1) }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "too_many_inputs");
        var response = await client.PostAsJsonAsync("/v1/predict", new { inputs = new object[] { new { adapter = id, text = "a" }, new { text = "b" } } });
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "missing_adapter");
        Assert.Equal(1, (await response.JsonAsync()).GetProperty("index").GetInt32());
    }

    /// <summary>An embedded API of its own, for tests that need settings or hooks the shared one must not get.</summary>
    private static async Task<(ReadApplication App, HttpClient Client, Guid Tenant, string Directory)> OwnApiAsync(Dictionary<string, string?> settings)
    {
        var directory = Directory.CreateTempSubdirectory("read-predict-").FullName;
        var app = ReadApplication.Start(directory, postgres: null, settings);
        var (client, tenant) = await TestTenants.CreateAsync(app, "own");
        return (app, client, tenant, directory);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var i = 0; i < 1500 && !condition(); i++)
            await Task.Delay(20);
        Assert.True(condition(), $"timed out waiting for {what}");
    }

    [Fact]
    public async Task Predict_AdapterDeletedWhileItsRequestIsQueued_AnswersFromItsLease_ThenIsGone()
    {
        // A long gather window holds the request between admission and the side network; the delete lands there.
        var (app, client, tenant, directory) = await OwnApiAsync(new() { ["Read:Inference:MaxBatchDelayMs"] = "5000" });
        try
        {
            var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
            var artifact = TestAdapters.Artifact(backbone, 53);
            var id = await TestAdapters.PublishAsync(app, tenant, artifact);
            var cache = app.Service<Read.Api.Adapters.LoadedAdapterCache>();
            var batcher = app.Service<Read.Api.Inference.InferenceBatcher>();
            string[] texts = ["the movie was good", "awful"];

            var predict = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", new { inputs = texts.Select(t => new { text = t }).ToArray() });
            await WaitUntilAsync(() => cache.Count == 1 && batcher.QueueDepth == 1, "the adapter to load");
            await Task.Delay(1000); // from the load to the queue is microseconds; the window has 4 s left
            Assert.False(predict.IsCompleted);
            Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/v1/adapters/{id}")).StatusCode);
            Assert.Equal(0, cache.Count); // out of the cache at once, its side network kept alive by the queued request's lease

            var response = await predict;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var reference = AdapterArtifact.Load(artifact, backbone);
            var expected = AdapterPredictor.Predict(backbone, reference, texts, null);
            var predictions = (await response.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
            for (var i = 0; i < texts.Length; i++)
                AssertMatches(expected[i], predictions[i]);
            await (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", new { inputs = new[] { new { text = "x" } } })).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
            await (await client.PostAsJsonAsync("/v1/predict", new { inputs = new[] { new { adapter = id, text = "x" } } })).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        }
        finally
        {
            await app.DisposeAsync();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Predict_AdapterDeletedBetweenLookupAndLoad_Returns404_TheMixedOneNamingTheIndex()
    {
        var (app, client, tenant, directory) = await OwnApiAsync(new());
        try
        {
            var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
            var cache = app.Service<Read.Api.Adapters.LoadedAdapterCache>();
            var kept = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 54));
            var single = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 55));
            var mixed = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 56));
            using (await cache.AcquireAsync(kept, BackboneRegistry.TinyBackboneId, () => Task.FromResult<byte[]?>(TestAdapters.Artifact(backbone, 54))))
            {
                // loaded: the mixed request below finds it in the cache, so only its other adapter is read (and deleted)
            }

            // The delete lands after the request found the adapter and before its artifact is read (a miss loads it).
            cache.BeforeArtifactRead = async adapterId => Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/v1/adapters/{adapterId}")).StatusCode);

            var response = await client.PostAsJsonAsync($"/v1/adapters/{single}/predict", new { inputs = new[] { new { text = "x" } } });
            await response.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
            Assert.Contains(single, (await response.JsonAsync()).GetProperty("detail").GetString());

            response = await client.PostAsJsonAsync("/v1/predict",
                new { inputs = new[] { new { adapter = kept, text = "x" }, new { adapter = mixed, text = "y" }, new { adapter = mixed, text = "z" } } });
            await response.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
            var problem = await response.JsonAsync();
            Assert.Equal(1, problem.GetProperty("index").GetInt32()); // like an adapter unknown from the start
            Assert.Equal($"inputs[1]: no adapter '{mixed}'.", problem.GetProperty("detail").GetString());
        }
        finally
        {
            await app.DisposeAsync();
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task BothPredictEndpoints_AdapterOfABackboneNoLongerRegistered_Return503BackboneUnavailable()
    {
        // Its backbone was removed from the deployment's configuration after it was trained.
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "retired-backbone");
        var id = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 57), backboneId: "retired-backbone");

        var response = await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", new { inputs = new[] { new { text = "x" } } });
        await response.AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "backbone_unavailable");
        Assert.Contains("retired-backbone", (await response.JsonAsync()).GetProperty("detail").GetString());
        await (await client.PostAsJsonAsync("/v1/predict", new { inputs = new[] { new { adapter = id, text = "x" } } }))
            .AssertProblemAsync(HttpStatusCode.ServiceUnavailable, "backbone_unavailable");
    }

    [Fact]
    public async Task SingleAdapterPredict_BadBody_Returns400BeforeLookingUpTheAdapter()
    {
        // The body is checked first, as on the mixed endpoint: an unknown adapter with a bad body is a 400, not a 404.
        var (client, _) = await TestTenants.CreateAsync(service.Api, "predict-order");
        await (await client.PostAsJsonAsync("/v1/adapters/adapter-does-not-exist/predict", new { inputs = Array.Empty<object>() }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "missing_inputs");
    }

    [Fact]
    public async Task Metrics_AfterAPredict_ExposeRequestBatchQueueCacheAndForwardSeries()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "metrics");
        var id = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 40));
        for (var i = 0; i < 2; i++) // a miss, then a hit
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", new { inputs = new[] { new { text = "good" } } })).StatusCode);

        string[] series =
        [
            "http_server_request_duration_seconds_count{", "http_route=\"/v1/adapters/{id}/predict\"", "read_inference_batch_rows_bucket{",
            "read_inference_batch_requests_bucket{", "read_inference_queue_depth", "read_adapter_cache_hits_total", "read_adapter_cache_misses_total",
            "read_backbone_forward_duration_seconds_bucket{",
        ];
        using var anonymous = service.Api.CreateClient(apiKey: null);
        var text = "";
        // The exporter caches a scrape briefly: poll until this predict's series are in.
        for (var attempt = 0; attempt < 50 && !series.All(text.Contains); attempt++)
        {
            var response = await anonymous.GetAsync("/metrics");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            text = await response.Content.ReadAsStringAsync();
            if (!series.All(text.Contains))
                await Task.Delay(100);
        }

        Assert.All(series, s => Assert.Contains(s, text));
        Assert.DoesNotContain(tenant.ToString(), text, StringComparison.OrdinalIgnoreCase); // no tenant ids in a scrape
    }
}
