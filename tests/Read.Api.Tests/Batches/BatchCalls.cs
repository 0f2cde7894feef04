using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace Read.Api.Tests.Batches;

/// <summary>The batch API calls tests make: input files, creating and waiting for batches, reading result files.</summary>
internal static class BatchCalls
{
    public static byte[] Jsonl(IEnumerable<object> lines) =>
        Encoding.UTF8.GetBytes(string.Concat(lines.Select(l => JsonSerializer.Serialize(l) + "\n")));

    public static object Line(string customId, string url, object body) => new Dictionary<string, object>
    {
        ["custom_id"] = customId, ["method"] = "POST", ["url"] = url, ["body"] = body,
    };

    public static async Task<string> UploadBatchFileOkAsync(this HttpClient client, IEnumerable<object> lines)
    {
        var response = await client.UploadAsync(Jsonl(lines), "requests.jsonl", purpose: "batch");
        var json = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, json.ToString());
        Assert.Equal("batch", json.GetProperty("purpose").GetString());
        return json.GetProperty("id").GetString()!;
    }

    public static async Task<JsonElement> CreateBatchOkAsync(this HttpClient client, string fileId, string endpoint)
    {
        var response = await client.PostAsJsonAsync("/v1/batches", new { input_file_id = fileId, endpoint, completion_window = "24h", metadata = new { purpose = "test" } });
        var json = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, json.ToString());
        Assert.Equal("batch", json.GetProperty("object").GetString());
        Assert.Equal("validating", json.GetProperty("status").GetString());
        AssertOpenAiBatchObject(json);
        return json;
    }

    /// <summary>Every field of OpenAI's Batch object is present; expires_at is created_at + the 24 h window, never expired.</summary>
    public static void AssertOpenAiBatchObject(JsonElement batch)
    {
        string[] fields =
        [
            "id", "object", "endpoint", "errors", "input_file_id", "completion_window", "status", "output_file_id", "error_file_id",
            "created_at", "in_progress_at", "expires_at", "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
            "cancelled_at", "request_counts", "metadata",
        ];
        Assert.All(fields, f => Assert.True(batch.TryGetProperty(f, out _), $"no '{f}' in {batch}"));
        Assert.Equal(batch.GetProperty("created_at").GetInt64() + 24 * 3600, batch.GetProperty("expires_at").GetInt64());
        Assert.Equal(JsonValueKind.Null, batch.GetProperty("expired_at").ValueKind);
    }

    public static Task<JsonElement> WaitForBatchAsync(this HttpClient client, string batchId, Func<string, bool>? until = null, TimeSpan? timeout = null) =>
        client.WaitForBatchAsync(batchId, b => (until ?? (s => s is "completed" or "failed" or "cancelled"))(b.GetProperty("status").GetString()!), timeout);

    /// <summary>Polls the batch until <paramref name="until"/> holds for it.</summary>
    public static async Task<JsonElement> WaitForBatchAsync(this HttpClient client, string batchId, Func<JsonElement, bool> until, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (true)
        {
            var batch = await (await client.GetAsync($"/v1/batches/{batchId}")).JsonAsync();
            var status = batch.GetProperty("status").GetString()!;
            if (until(batch))
            {
                AssertOpenAiBatchObject(batch);
                return batch;
            }

            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Batch {batchId} still {status} after the timeout: {batch}");
            await Task.Delay(100);
        }
    }

    /// <summary>A result file's lines by custom_id.</summary>
    public static async Task<Dictionary<string, JsonElement>> ResultLinesAsync(this HttpClient client, string fileId)
    {
        var response = await client.GetAsync($"/v1/files/{fileId}/content");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)
            .ToDictionary(l => l.GetProperty("custom_id").GetString()!, l => l);
    }

    /// <summary>Label, top-k label order and probabilities (within <paramref name="tolerance"/>) equal, prediction by prediction.</summary>
    public static void AssertSamePredictions(JsonElement expected, JsonElement actual, double tolerance)
    {
        var e = expected.GetProperty("predictions").EnumerateArray().ToList();
        var a = actual.GetProperty("predictions").EnumerateArray().ToList();
        Assert.Equal(e.Count, a.Count);
        for (var i = 0; i < e.Count; i++)
        {
            Assert.Equal(e[i].GetProperty("label").GetString(), a[i].GetProperty("label").GetString());
            if (e[i].TryGetProperty("adapter", out var adapter))
                Assert.Equal(adapter.GetString(), a[i].GetProperty("adapter").GetString());
            var ep = e[i].GetProperty("probabilities").EnumerateObject().ToList();
            var ap = a[i].GetProperty("probabilities").EnumerateObject().ToList();
            Assert.Equal(ep.Select(p => p.Name), ap.Select(p => p.Name));
            for (var k = 0; k < ep.Count; k++)
                Assert.InRange(ap[k].Value.GetDouble(), ep[k].Value.GetDouble() - tolerance, ep[k].Value.GetDouble() + tolerance);
        }
    }
}
