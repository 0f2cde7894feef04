using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Read.Api.Tests;

/// <summary>Every bad request gets a ProblemDetails with a stable code, and nothing is stored.</summary>
[Collection(ServiceCollection.Name)]
public sealed class BadInputTests(PostgresServiceFixture service)
{
    [Theory]
    [InlineData("{\"text\":\"fine\",\"label\":\"a\"}\n{\"text\":\"x\",\"label\":\"b\"}\n{\"text\": oops}\n", "invalid_json", 3)]
    [InlineData("{\"text\":\"fine\",\"label\":\"a\"}\n{\"label\":\"b\"}\n", "missing_text", 2)]
    [InlineData("{\"text\":\"fine\",\"label\":\"a\"}\n\n{\"text\":\"no label\"}\n", "missing_label", 3)]
    [InlineData("[1,2]\n", "invalid_json", 1)]
    [InlineData("{\"text\":\"one\",\"label\":\"a\"}\n{\"text\":\"two\",\"label\":\"a\"}\n", "single_label", null)]
    [InlineData("", "empty_file", null)]
    [InlineData("\n  \n", "empty_file", null)]
    public async Task Upload_InvalidJsonl_Returns400NamingTheLineAndStoresNothing(string content, string code, int? line)
    {
        using var client = await service.Api.CreateTenantClientAsync("bad-upload");
        var response = await client.UploadAsync(Encoding.UTF8.GetBytes(content));
        await response.AssertProblemAsync(HttpStatusCode.BadRequest, code);
        var problem = await response.JsonAsync();
        if (line is { } n)
        {
            Assert.Equal(n, problem.GetProperty("line").GetInt32());
            Assert.Contains($"Line {n}", problem.GetProperty("detail").GetString());
        }
        await AssertNothingStoredAsync(client);
    }

    [Fact]
    public async Task Upload_OverTheConfiguredLimit_Returns413AndStoresNothing()
    {
        using var client = await service.Api.CreateTenantClientAsync("big-upload");
        var examples = TestData.Sentiment(2000, seed: 5);
        var content = TestData.Jsonl(examples);
        Assert.True(content.Length > PostgresServiceFixture.MaxUploadBytes);
        await (await client.UploadAsync(content)).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        await AssertNothingStoredAsync(client);
    }

    [Fact]
    public async Task CreateJob_UnknownBackboneOrFileOrBadHyperparameters_Returns400WithStableCode()
    {
        using var client = await service.Api.CreateTenantClientAsync("bad-job");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(10, seed: 6)));

        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "gpt-17", training_file = fileId }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "unknown_backbone");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, task = "regression" }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_regression_label");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, task = "ranking" }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_task");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = "file-doesnotexist" }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "file_not_found");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, validation_file = "file-nope" }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "file_not_found");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 0 } }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_hyperparameters");
        // Checked against the backbone itself: tiny-bert has 4 layers and 128 positions.
        var tooDeep = await client.PostAsJsonAsync("/v1/fine-tuning/jobs",
            new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { layers = new[] { 2, 7 }, max_length = 512 } });
        await tooDeep.AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_hyperparameters");
        var errors = (await tooDeep.JsonAsync()).GetProperty("errors").EnumerateArray().Select(e => e.GetString()!).ToList();
        Assert.Contains(errors, e => e.StartsWith("layers must be between 1 and 4", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("max_length must be between 8 and 128", StringComparison.Ordinal));
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epoch = 3 } }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");
        using var malformed = new StringContent("{\"backbone\": ", Encoding.UTF8, "application/json");
        await (await client.PostAsync("/v1/fine-tuning/jobs", malformed)).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_request");

        var jobs = await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync();
        Assert.Empty(jobs.GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task AnyEndpoint_MissingOrWrongApiKey_Returns401()
    {
        using var anonymous = service.Api.CreateClient(apiKey: null);
        await (await anonymous.GetAsync("/v1/files")).AssertProblemAsync(HttpStatusCode.Unauthorized, "missing_api_key");
        using var wrong = service.Api.CreateClient("rk_not-a-real-key");
        await (await wrong.GetAsync("/v1/fine-tuning/jobs")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        await (await wrong.UploadAsync(TestData.Jsonl(TestData.Sentiment(4, 1)))).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        using var tenant = await service.Api.CreateTenantClientAsync("not-admin");
        await (await tenant.PostAsJsonAsync("/v1/admin/tenants", new { name = "x" })).AssertProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Operations_HealthReadinessAndSwagger_DocumentEveryEndpointWithBearerAuth()
    {
        using var anonymous = service.Api.CreateClient(apiKey: null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/swagger/index.html")).StatusCode);
        var swagger = JsonDocument.Parse(await anonymous.GetStringAsync("/swagger/v1/swagger.json")).RootElement;
        var paths = swagger.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToHashSet();
        foreach (var path in new[]
                 {
                     "/v1/files", "/v1/files/{id}", "/v1/fine-tuning/jobs", "/v1/fine-tuning/jobs/{id}", "/v1/fine-tuning/jobs/{id}/events",
                     "/v1/adapters", "/v1/adapters/{id}", "/v1/adapters/{id}/download", "/v1/adapters/{id}/predict", "/v1/predict",
                     "/v1/backbones", "/v1/admin/tenants",
                 })
            Assert.Contains(path, paths);
        Assert.Equal("bearer", swagger.GetProperty("components").GetProperty("securitySchemes").GetProperty("Bearer").GetProperty("scheme").GetString());
        Assert.True(swagger.GetProperty("security").GetArrayLength() > 0);
    }

    private static async Task AssertNothingStoredAsync(HttpClient client)
    {
        var files = await (await client.GetAsync("/v1/files")).JsonAsync();
        Assert.Empty(files.GetProperty("data").EnumerateArray());
    }
}
