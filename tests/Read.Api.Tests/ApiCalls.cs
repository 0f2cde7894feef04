using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Read.Api.Tests;

/// <summary>The HTTP calls tests make, written once.</summary>
internal static class ApiCalls
{
    /// <param name="purposeFirst">Send the purpose field before the file (the upload streams, so the order matters to it).</param>
    public static async Task<HttpResponseMessage> UploadAsync(this HttpClient client, byte[] content, string fileName = "data.jsonl", string? purpose = null,
        bool purposeFirst = false)
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(content);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        if (purpose is not null && purposeFirst)
            form.Add(new StringContent(purpose), "purpose");
        form.Add(file, "file", fileName);
        if (purpose is not null && !purposeFirst)
            form.Add(new StringContent(purpose), "purpose");
        return await client.PostAsync("/v1/files", form);
    }

    public static async Task<string> UploadOkAsync(this HttpClient client, byte[] content)
    {
        var response = await client.UploadAsync(content);
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        return (await response.JsonAsync()).GetProperty("id").GetString()!;
    }

    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    public static async Task<JsonElement> CreateJobOkAsync(this HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", body);
        var json = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, json.ToString());
        Assert.Equal("queued", json.GetProperty("status").GetString());
        return json;
    }

    /// <summary>Polls the job until it reaches a terminal status (or fails the test after <paramref name="timeout"/>).</summary>
    public static async Task<JsonElement> WaitForJobAsync(this HttpClient client, string jobId, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (true)
        {
            var job = await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}")).JsonAsync();
            var status = job.GetProperty("status").GetString();
            if (status is "succeeded" or "failed" or "cancelled")
                return job;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Job {jobId} still {status} after the timeout: {job}");
            await Task.Delay(200);
        }
    }

    public static async Task AssertProblemAsync(this HttpResponseMessage response, HttpStatusCode status, string code)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.StartsWith("application/problem+json", response.Content.Headers.ContentType?.MediaType ?? "");
        var json = JsonDocument.Parse(body).RootElement;
        Assert.Equal(code, json.GetProperty("code").GetString());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("detail").GetString()));
    }
}
