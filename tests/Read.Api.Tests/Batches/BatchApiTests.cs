using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Read.Domain.Backbones;
using Read.Domain.SideNetwork;

namespace Read.Api.Tests.Batches;

/// <summary>
/// Batch prediction on the shared Postgres-mode deployment (the API enqueues, the separate worker host runs the batch).
/// The reference for every answer is the online endpoint, called with the same body.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class BatchApiTests(PostgresServiceFixture service)
{
    private const double Tolerance = 1e-4;

    private Backbone TinyBert => service.Api.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);

    [Fact]
    public async Task Batch_OverTwoAdaptersOfOneTenant_AnswersAsOnlinePredictWithFailuresInTheErrorFile()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "batch-two-adapters");
        var (_, otherTenant) = await TestTenants.CreateAsync(service.Api, "batch-other");
        // Two cls adapters share one precompute; the mean-pooled one needs its own positions.
        var a = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 51));
        var b = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 52, labels: 7));
        var c = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 53, labels: 3, pooling: Pooling.Mean));
        var foreign = await TestAdapters.PublishAsync(service.Api, otherTenant, TestAdapters.Artifact(TinyBert, 54));
        var texts = TestAdapters.Texts;
        var requests = new Dictionary<string, (string Url, object Body)>
        {
            ["a-all"] = ($"/v1/adapters/{a}/predict", new { inputs = texts.Select(t => new { text = t }).ToArray() }),
            ["b-some"] = ($"/v1/adapters/{b}/predict", new { inputs = texts.Skip(3).Select(t => new { text = t }).ToArray(), top_k = 3 }),
            ["c-pair"] = ($"/v1/adapters/{c}/predict", new { inputs = new[] { new { text = texts[0], text_pair = (string?)texts[1] }, new { text = texts[2], text_pair = (string?)null } } }),
            ["a-again"] = ($"/v1/adapters/{a}/predict", new { inputs = new[] { new { text = texts[5] } } }),
            ["unknown"] = ("/v1/adapters/adapter-nope/predict", new { inputs = new[] { new { text = "hello" } } }),
            ["foreign"] = ($"/v1/adapters/{foreign}/predict", new { inputs = new[] { new { text = "hello" } } }),
            ["no-text"] = ($"/v1/adapters/{a}/predict", new { inputs = new[] { new { text = " " } } }),
        };
        var fileId = await client.UploadBatchFileOkAsync(requests.Select(r => BatchCalls.Line(r.Key, r.Value.Url, r.Value.Body)));

        var created = await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict");
        var batch = await client.WaitForBatchAsync(created.GetProperty("id").GetString()!);

        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        var counts = batch.GetProperty("request_counts");
        Assert.Equal((7, 4, 3), (counts.GetProperty("total").GetInt32(), counts.GetProperty("completed").GetInt32(), counts.GetProperty("failed").GetInt32()));
        Assert.Equal("test", batch.GetProperty("metadata").GetProperty("purpose").GetString());
        Assert.NotEqual(JsonValueKind.Null, batch.GetProperty("completed_at").ValueKind);
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);
        var errors = await client.ResultLinesAsync(batch.GetProperty("error_file_id").GetString()!);
        Assert.Equal(["a-again", "a-all", "b-some", "c-pair"], output.Keys.Order());
        Assert.Equal(["foreign", "no-text", "unknown"], errors.Keys.Order());
        foreach (var (customId, (url, body)) in requests)
        {
            var online = await client.PostAsJsonAsync(url, body);
            var expected = await online.JsonAsync();
            var line = output.TryGetValue(customId, out var ok) ? ok : errors[customId];
            Assert.StartsWith("batch_req_", line.GetProperty("id").GetString());
            Assert.Equal(JsonValueKind.Null, line.GetProperty("error").ValueKind);
            var response = line.GetProperty("response");
            Assert.Equal((int)online.StatusCode, response.GetProperty("status_code").GetInt32());
            var actual = response.GetProperty("body");
            if (online.StatusCode == HttpStatusCode.OK)
            {
                Assert.Equal(expected.GetProperty("adapter_id").GetString(), actual.GetProperty("adapter_id").GetString());
                BatchCalls.AssertSamePredictions(expected, actual, Tolerance);
            }
            else
            {
                foreach (var field in new[] { "code", "title", "detail", "type" })
                    Assert.Equal(expected.GetProperty(field).GetString(), actual.GetProperty(field).GetString());
                Assert.Equal((int)online.StatusCode, actual.GetProperty("status").GetInt32());
            }
        }
    }

    [Fact]
    public async Task Batch_MixedPredictEndpoint_AnswersAsOnlinePredict()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "batch-mixed");
        var a = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 61));
        var b = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(TinyBert, 62, labels: 4));
        var texts = TestAdapters.Texts;
        var body = new { inputs = texts.Select((t, i) => new { adapter = i % 2 == 0 ? a : b, text = t }).ToArray(), top_k = 2 };
        var missing = new { inputs = new[] { new { adapter = a, text = "x" }, new { adapter = "adapter-missing", text = "y" } } };
        var fileId = await client.UploadBatchFileOkAsync([BatchCalls.Line("mixed", "/v1/predict", body), BatchCalls.Line("missing", "/v1/predict", missing)]);

        var batch = await client.WaitForBatchAsync((await client.CreateBatchOkAsync(fileId, "/v1/predict")).GetProperty("id").GetString()!);

        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);
        var expected = await (await client.PostAsJsonAsync("/v1/predict", body)).JsonAsync();
        BatchCalls.AssertSamePredictions(expected, output["mixed"].GetProperty("response").GetProperty("body"), Tolerance);
        var error = (await client.ResultLinesAsync(batch.GetProperty("error_file_id").GetString()!))["missing"].GetProperty("response");
        var online = await client.PostAsJsonAsync("/v1/predict", missing);
        await online.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        Assert.Equal(404, error.GetProperty("status_code").GetInt32());
        Assert.Equal((await online.JsonAsync()).GetProperty("detail").GetString(), error.GetProperty("body").GetProperty("detail").GetString());
        Assert.Equal(1, error.GetProperty("body").GetProperty("index").GetInt32());
    }

    [Fact]
    public async Task Batch_OnDecoderBackbone_AnswersAsOnlinePredict()
    {
        var (client, tenant) = await TestTenants.CreateAsync(service.Api, "batch-llama");
        var llama = service.Api.Service<BackboneRegistry>().Get(PostgresServiceFixture.LlamaBackboneId);
        var id = await TestAdapters.PublishAsync(service.Api, tenant, TestAdapters.Artifact(llama, 63, labels: 3, pooling: Pooling.Last), PostgresServiceFixture.LlamaBackboneId);
        // Different lengths in one chunk: right padding must not change a decoder row's last-token state.
        var body = new { inputs = TestAdapters.Texts.Select(t => new { text = t }).ToArray() };
        var fileId = await client.UploadBatchFileOkAsync([BatchCalls.Line("llama", $"/v1/adapters/{id}/predict", body)]);

        var batch = await client.WaitForBatchAsync((await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict")).GetProperty("id").GetString()!);

        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);
        var expected = await (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", body)).JsonAsync();
        BatchCalls.AssertSamePredictions(expected, output["llama"].GetProperty("response").GetProperty("body"), Tolerance);
    }

    [Fact]
    public async Task BatchInputFile_Malformed_IsRefusedOnUploadNamingTheLine()
    {
        var client = await service.Api.CreateTenantClientAsync("batch-bad-input");
        var good = BatchCalls.Line("ok", "/v1/predict", new { inputs = new[] { new { adapter = "x", text = "y" } } });
        var cases = new (object Bad, string Code)[]
        {
            (new { method = "POST", url = "/v1/predict", body = new { } }, "missing_custom_id"),
            (BatchCalls.Line("ok", "/v1/predict", new { }), "duplicate_custom_id"),
            (new { custom_id = "g", method = "GET", url = "/v1/predict", body = new { } }, "invalid_method"),
            (new { custom_id = "u", method = "POST", url = "/v1/chat/completions", body = new { } }, "invalid_url"),
            (new { custom_id = "b", method = "POST", url = "/v1/predict", body = "text" }, "invalid_body"),
        };
        foreach (var (bad, code) in cases)
        {
            var response = await client.UploadAsync(BatchCalls.Jsonl([good, bad]), "requests.jsonl", purpose: "batch");
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, code);
            Assert.Equal(2, (await response.JsonAsync()).GetProperty("line").GetInt32());
        }

        // The purpose field before or after the file: either way the file is checked as what the purpose says.
        foreach (var purposeFirst in new[] { true, false })
        {
            var refused = await client.UploadAsync(BatchCalls.Jsonl([good, cases[1].Bad]), "requests.jsonl", purpose: "batch", purposeFirst: purposeFirst);
            await refused.AssertProblemAsync(HttpStatusCode.BadRequest, "duplicate_custom_id");
            var accepted = await client.UploadAsync(BatchCalls.Jsonl([good]), "requests.jsonl", purpose: "batch", purposeFirst: purposeFirst);
            Assert.Equal(HttpStatusCode.Created, accepted.StatusCode);
            Assert.Equal(1, (await accepted.JsonAsync()).GetProperty("example_count").GetInt32());
            // A batch line is not a labelled example: as a training file it is refused, naming line 1.
            var asDataset = await client.UploadAsync(BatchCalls.Jsonl([good]), "requests.jsonl", purpose: "fine-tune", purposeFirst: purposeFirst);
            Assert.Equal(HttpStatusCode.BadRequest, asDataset.StatusCode);
            Assert.Equal(1, (await asDataset.JsonAsync()).GetProperty("line").GetInt32());
        }

        var notJson = await client.UploadAsync("{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/predict\", \"body\": {}}\n{oops\n"u8.ToArray(), "r.jsonl", purpose: "batch");
        await notJson.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_json");
        Assert.Equal(2, (await notJson.JsonAsync()).GetProperty("line").GetInt32());

        // A batch file is not a training file, and a training file is not a batch file.
        var batchFile = await client.UploadBatchFileOkAsync([good]);
        var job = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = batchFile });
        await job.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_file_purpose");
        var trainingFile = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(8, seed: 1)));
        var wrong = await client.PostAsJsonAsync("/v1/batches", new { input_file_id = trainingFile, endpoint = "/v1/predict", completion_window = "24h" });
        await wrong.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_file_purpose");
        var mismatch = await client.PostAsJsonAsync("/v1/batches", new { input_file_id = batchFile, endpoint = "/v1/adapters/{id}/predict", completion_window = "24h" });
        await mismatch.AssertProblemAsync(HttpStatusCode.BadRequest, "endpoint_mismatch");
        var window = await client.PostAsJsonAsync("/v1/batches", new { input_file_id = batchFile, endpoint = "/v1/predict", completion_window = "1h" });
        await window.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_completion_window");
    }

    [Fact]
    public async Task Batch_OfAnotherTenant_IsNotFoundAndListsPage()
    {
        var owner = await service.Api.CreateTenantClientAsync("batch-owner");
        var stranger = await service.Api.CreateTenantClientAsync("batch-stranger");
        var fileId = await owner.UploadBatchFileOkAsync([BatchCalls.Line("one", "/v1/predict", new { inputs = new[] { new { adapter = "adapter-none", text = "y" } } })]);
        var first = (await owner.CreateBatchOkAsync(fileId, "/v1/predict")).GetProperty("id").GetString()!;
        var second = (await owner.CreateBatchOkAsync(fileId, "/v1/predict")).GetProperty("id").GetString()!;

        await (await stranger.GetAsync($"/v1/batches/{first}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await stranger.PostAsync($"/v1/batches/{first}/cancel", null)).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await stranger.GetAsync($"/v1/files/{fileId}/content")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        Assert.Empty((await (await stranger.GetAsync("/v1/batches")).JsonAsync()).GetProperty("data").EnumerateArray());

        var page = await (await owner.GetAsync("/v1/batches?limit=1")).JsonAsync();
        Assert.Equal(second, page.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.True(page.GetProperty("has_more").GetBoolean());
        var next = await (await owner.GetAsync($"/v1/batches?limit=1&after={second}")).JsonAsync();
        Assert.Equal(first, next.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.False(next.GetProperty("has_more").GetBoolean());

        // Its only request names an unknown adapter: an error-file line, not a failed batch.
        var done = await owner.WaitForBatchAsync(first);
        Assert.True(done.GetProperty("status").GetString() == "completed", done.ToString());
        Assert.Equal(JsonValueKind.Null, done.GetProperty("output_file_id").ValueKind);
        var error = (await owner.ResultLinesAsync(done.GetProperty("error_file_id").GetString()!))["one"];
        Assert.Equal(404, error.GetProperty("response").GetProperty("status_code").GetInt32());
        await (await owner.PostAsync($"/v1/batches/{first}/cancel", null)).AssertProblemAsync(HttpStatusCode.Conflict, "batch_not_cancellable");
    }
}
