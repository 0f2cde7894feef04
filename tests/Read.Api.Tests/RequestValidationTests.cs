using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Adapters;
using Read.Domain.Persistence;
using Serilog.Events;

namespace Read.Api.Tests;

/// <summary>Inputs from an outside review that answered 500 or were silently accepted: each is a 4xx with a stable code, nothing stored.</summary>
[Collection(ServiceCollection.Name)]
public sealed class RequestValidationTests(PostgresServiceFixture service)
{
    [Theory]
    [InlineData("{\"text\":\"caf\\xe9\",\"label\":\"x\"}\n{\"text\":\"a\",\"label\":\"y\"}\n", "invalid_encoding", 1)]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\\xff\"}\n", "invalid_encoding", 2)]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\\u0000\"}\n", "invalid_characters", 2)]
    [InlineData("{\"text\":\"a\\u0000b\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n", "invalid_characters", 1)]
    [InlineData("{\"text\":\"a\",\"text_pair\":\"\\ud800\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n", "invalid_characters", 1)]
    [InlineData("{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":2}\n{\"text\":\"c\",\"label\":\"1\"}\n", "mixed_label_types", 3)]
    [InlineData("{\"text\":\"a\",\"label\":\"yes\"}\n{\"text\":\"b\",\"label\":true}\n", "mixed_label_types", 2)]
    public async Task Upload_BadBytesCharactersOrLabelTypes_Returns400NamingTheLineAndStoresNothing(string content, string code, int line)
    {
        using var client = await service.Api.CreateTenantClientAsync("bad-content");
        var response = await client.UploadAsync(RawBytes(content));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, code);
        var problem = await response.JsonAsync();
        Assert.Equal(line, problem.GetProperty("line").GetInt32());
        Assert.Contains($"Line {line}", problem.GetProperty("detail").GetString());
        await AssertNoFilesAsync(client);
    }

    [Fact]
    public async Task Upload_BomThenUtf8_IsAccepted()
    {
        using var client = await service.Api.CreateTenantClientAsync("bom-upload");
        var content = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes("{\"text\":\"café\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n")).ToArray();
        await client.UploadOkAsync(content);
    }

    [Fact]
    public async Task Upload_NulInFileName_Returns400InvalidCharactersAndStoresNothing()
    {
        using var client = await service.Api.CreateTenantClientAsync("nul-filename");
        // HttpClient will not put a NUL in a header, so the multipart body is written by hand; filename* is RFC 5987 encoded.
        const string boundary = "read-test-boundary";
        var body = $"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%00b.jsonl\r\n" +
                   "Content-Type: application/jsonl\r\n\r\n{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n\r\n" +
                   $"--{boundary}--\r\n";
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={boundary}");
        await (await client.PostAsync("/v1/files", content)).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_characters");
        await AssertNoFilesAsync(client);
    }

    [Fact]
    public async Task CreateTenant_NulInName_Returns400InvalidCharacters()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var name = "evil\u0000tenant-" + Guid.NewGuid().ToString("N");
        await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name })).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_characters");
        await using var db = await service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        Assert.False(await db.Tenants.AnyAsync(t => t.Name.EndsWith(name.Substring(name.Length - 32))));
    }

    [Fact]
    public async Task CreateJob_MetadataBeyondOpenAiLimits_Returns400InvalidMetadataAndStoresNothing()
    {
        using var client = await service.Api.CreateTenantClientAsync("metadata");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(10, seed: 3)));
        var tooMany = Enumerable.Range(0, 17).ToDictionary(i => $"k{i}", i => (object)"v");
        var longKey = new Dictionary<string, object> { [new string('k', 65)] = "v" };
        var longValue = new Dictionary<string, object> { ["k"] = new string('v', 513) };
        var number = new Dictionary<string, object> { ["k"] = 3 };
        var nested = new Dictionary<string, object> { ["k"] = new { a = "b" } };
        foreach (var metadata in new[] { tooMany, longKey, longValue, number, nested })
        {
            var response = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, metadata });
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_metadata");
        }
        Assert.Empty((await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray());

        // Exactly at every limit is fine, and comes back as sent.
        var atLimit = Enumerable.Range(0, 16).ToDictionary(i => $"{i:D2}" + new string('k', 62), i => new string('v', 512));
        var job = await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 }, metadata = atLimit });
        Assert.Equal(atLimit, job.GetProperty("metadata").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!));
        await client.WaitForJobAsync(job.GetProperty("id").GetString()!);
    }

    [Fact]
    public async Task CreateJob_NumberAsStringOrOutOfRangeHyperparameter_Returns400NamingTheField()
    {
        using var client = await service.Api.CreateTenantClientAsync("bounds");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(10, seed: 4)));
        using var stringEpochs = new StringContent(
            $"{{\"backbone\":\"tiny-bert\",\"training_file\":\"{fileId}\",\"hyperparameters\":{{\"epochs\":\"3\"}}}}", Encoding.UTF8, "application/json");
        await (await client.PostAsync("/v1/fine-tuning/jobs", stringEpochs)).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");

        foreach (var (field, hyperparameters) in new (string, object)[]
                 {
                     ("learning_rate", new { learning_rate = 1e300 }), ("learning_rate", new { learning_rate = 2.0 }),
                     ("weight_decay", new { weight_decay = 1e9 }), ("max_grad_norm", new { max_grad_norm = 1e300 }),
                     ("warmup_ratio", new { warmup_ratio = 1.5 }), ("validation_split", new { validation_split = -0.1 }),
                     ("precompute", new { precompute = "disk" }),
                 })
        {
            var response = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, hyperparameters });
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_hyperparameters");
            var errors = (await response.JsonAsync()).GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ToList();
            Assert.Contains(errors, e => e.StartsWith(field + " must be", StringComparison.Ordinal));
        }
        Assert.Empty((await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray());
    }

    [Theory]
    [InlineData("cell", "transformer", "cell must be one of gru, rnn, lstm (got 'transformer').")]
    [InlineData("pooling", "max", "pooling must be one of mean, cls, last (got 'max').")]
    [InlineData("input_norm", "batchnorm", "input_norm must be one of layernorm, rmsnorm, none (got 'batchnorm').")]
    [InlineData("initial_state", "random", "initial_state must be one of zeros, embedding (got 'random').")]
    [InlineData("class_weights", "inverse", "class_weights must be one of none, balanced (got 'inverse').")]
    [InlineData("cache_dtype", "fp8", "cache_dtype must be one of fp16, bf16 (got 'fp8').")]
    [InlineData("aggregation", "max", "aggregation must be one of mean, last (got 'max').")]
    [InlineData("precompute", "disk", "precompute must be one of auto, resident, streamed (got 'disk').")]
    public async Task CreateJob_UnknownVariantName_Returns400NamingTheFieldAndTheValidNames(string field, string value, string expected)
    {
        using var client = await service.Api.CreateTenantClientAsync("variants-" + field.Replace('_', '-'));
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(10, seed: 4)));
        using var body = new StringContent(
            $"{{\"backbone\":\"tiny-bert\",\"training_file\":\"{fileId}\",\"hyperparameters\":{{\"{field}\":\"{value}\"}}}}", Encoding.UTF8, "application/json");
        var response = await client.PostAsync("/v1/fine-tuning/jobs", body);
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_hyperparameters");
        Assert.Equal([expected], (await response.JsonAsync()).GetProperty("errors").EnumerateArray().Select(e => e.GetString()!));
        Assert.Empty((await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task CreateJob_BatchLargerThanOneActivationCacheRead_Returns400NamingTheLargestBatch()
    {
        using var client = await service.Api.CreateTenantClientAsync("big-batch");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(10, seed: 5)));
        // all-MiniLM-L6-v2: 6 cached layers × 384 × 2 bytes × 512 positions = 2,359,296 bytes per example; one read holds
        // Array.MaxLength bytes, so 910 examples.
        var hyperparameters = new { batch_size = 4096, max_length = 512 };
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "all-minilm-l6-v2", training_file = fileId, hyperparameters });
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_hyperparameters");
        var errors = (await response.JsonAsync()).GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains(errors, e => e.StartsWith("batch_size must be at most 910 ", StringComparison.Ordinal));

        // cls pooling caches one position per example, so the same batch fits.
        var cls = await client.PostAsJsonAsync("/v1/fine-tuning/jobs",
            new { backbone = "all-minilm-l6-v2", training_file = fileId, hyperparameters = new { batch_size = 4096, max_length = 512, pooling = "cls", epochs = 1 } });
        Assert.Equal(HttpStatusCode.Created, cls.StatusCode);
        await client.PostAsync($"/v1/fine-tuning/jobs/{(await cls.JsonAsync()).GetProperty("id").GetString()}/cancel", null);
    }

    [Fact]
    public async Task Predict_NullInputOrTooLongText_Returns400NamingTheIndex()
    {
        using var client = await service.Api.CreateTenantClientAsync("predict-inputs");
        var adapterId = await InsertAdapterAsync(client);
        var maxChars = new Read.Domain.Configuration.ReadOptions().MaxPredictTextChars;
        var ok = new string('a', maxChars);
        var tooLong = new string('a', maxChars + 1);
        var cases = new (string Body, string Code, int Index)[]
        {
            ("{\"inputs\":[null]}", "missing_text", 0),
            ("{\"inputs\":[{\"text\":\"fine\"},null]}", "missing_text", 1),
            ($"{{\"inputs\":[{{\"text\":\"{ok}\"}},{{\"text\":\"{tooLong}\"}}]}}", "text_too_long", 1),
            ($"{{\"inputs\":[{{\"text\":\"fine\",\"text_pair\":\"{tooLong}\"}}]}}", "text_too_long", 0),
        };
        foreach (var (body, code, index) in cases)
        {
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            var response = await client.PostAsync($"/v1/adapters/{adapterId}/predict", content);
            await response.AssertProblemAsync(HttpStatusCode.BadRequest, code);
            var problem = await response.JsonAsync();
            Assert.Equal(index, problem.GetProperty("index").GetInt32());
            Assert.Contains($"inputs[{index}]", problem.GetProperty("detail").GetString());
        }
    }

    [Fact]
    public async Task PostJson_WrongContentType_Returns415WithCode()
    {
        using var client = await service.Api.CreateTenantClientAsync("media-type");
        using var content = new StringContent("{\"backbone\":\"tiny-bert\"}", Encoding.UTF8, "text/plain");
        await (await client.PostAsync("/v1/fine-tuning/jobs", content)).AssertProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
        using var upload = new StringContent("{\"text\":\"a\",\"label\":\"x\"}\n", Encoding.UTF8, "application/jsonl");
        await (await client.PostAsync("/v1/files", upload)).AssertProblemAsync(HttpStatusCode.UnsupportedMediaType, "unsupported_media_type");
    }

    [Fact]
    public async Task PostJson_OverKestrelsBodyLimit_Returns413WithCode()
    {
        using var client = await service.Api.CreateTenantClientAsync("huge-json");
        // Kestrel's default MaxRequestBodySize is 30,000,000 bytes. Expect: 100-continue lets Kestrel answer before the
        // body is sent; without it the client would see its upload cut off rather than the answer.
        var metadata = new Dictionary<string, string> { ["k"] = new string('v', 31_000_000) };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/fine-tuning/jobs")
        {
            Content = JsonContent.Create(new { backbone = "tiny-bert", training_file = "file-x", metadata }),
        };
        await request.Content.LoadIntoBufferAsync(); // sends a Content-Length, which Kestrel checks before reading
        request.Headers.ExpectContinue = true;
        var response = await client.SendAsync(request);
        await response.AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
    }

    [Fact]
    public async Task RequestLog_ClientErrorThatThrowsWhileBinding_IsLoggedWithItsRealStatusNotAs500()
    {
        using var client = await service.Api.CreateTenantClientAsync("request-log");
        // An unparsable query value throws BadHttpRequestException during binding, before any handler runs.
        var path = $"/v1/fine-tuning/jobs/ftjob-{Guid.NewGuid():N}/events";
        await (await client.GetAsync(path + "?after=not-a-number")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");

        var logged = await service.Api.Logs.RequestLogAsync(path);
        Assert.Equal(400, ((ScalarValue)logged.Properties["StatusCode"]).Value);
        Assert.True(logged.Level < LogEventLevel.Error, $"{logged.Level}: {logged.RenderMessage()}");
        Assert.DoesNotContain(service.Api.Logs.Events, e => e.Level >= LogEventLevel.Error && e.RenderMessage().Contains(path, StringComparison.Ordinal));
    }

    /// <summary>An adapter row the predict endpoint finds; its artifact is never loaded when the inputs are rejected first.</summary>
    private async Task<string> InsertAdapterAsync(HttpClient client)
    {
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(4, seed: 9)));
        await using var db = await service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        var tenantId = (await db.Files.SingleAsync(f => f.Id == fileId)).TenantId;
        var id = "adapter-" + Guid.NewGuid().ToString("N");
        db.Adapters.Add(new AdapterRecord
        {
            Id = id, TenantId = tenantId, JobId = "ftjob-" + Guid.NewGuid().ToString("N"), BackboneId = "tiny-bert", BackboneWeightsHash = "none",
            ConfigJson = "{}", MetricsJson = "{}", Artifact = [], SizeBytes = 0, Sha256 = "", CreatedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();
        return id;
    }

    /// <summary>ASCII text in which \xNN stands for the raw byte NN, so test data can hold invalid UTF-8.</summary>
    private static byte[] RawBytes(string text) =>
        Encoding.Latin1.GetBytes(Regex.Replace(text, @"\\x([0-9a-f]{2})", m => ((char)Convert.ToByte(m.Groups[1].Value, 16)).ToString()));

    private static async Task AssertNoFilesAsync(HttpClient client) =>
        Assert.Empty((await (await client.GetAsync("/v1/files")).JsonAsync()).GetProperty("data").EnumerateArray());
}
