using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Api.Adapters;
using Read.Api.Tests.Batches;
using Read.Domain.Backbones;
using Read.Domain.Persistence;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Api.Tests;

/// <summary>
/// Read:Device placement of the API's own inference paths, checked on the CPU as tests/Read.Domain.Tests/Devices'
/// DevicePlacementTests does: with TorchSharp's default device moved to <c>meta</c> (shape, no storage), a tensor or
/// module created without the configured device cannot meet the CPU backbone's tensors nor be read back, so a request
/// that answers as it did on the ordinary default proves every allocation on its path names Read:Device. The paths:
/// online predict (adapter cache → InferenceBatcher → SharedForwardPredictor in length-sorted chunks) and a batch
/// (BatchJobRunner → BatchForward), in the embedded host. The default device is process-wide: the service collection
/// runs nothing beside it.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class InferenceDevicePlacementTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_device_key";
    private const double Tolerance = 1e-6; // the same operations on the same device: only a stray meta tensor could differ
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-device-placement-").FullName;

    [Fact]
    public async Task OnlinePredictAndBatch_UnderMetaDefault_AnswerAsOnTheOrdinaryDefault()
    {
        // Three rows per forward: a request of 8 texts runs as several chunks stitched into one (N, S, d) per layer.
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?>
        {
            ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:Device"] = "cpu", ["Read:Inference:MaxForwardRows"] = "3", ["Read:Batches:ChunkTexts"] = "3",
        });
        using var client = app.CreateClient(DevelopmentKey);
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var tenant = await DevelopmentTenantAsync(app);
        var ids = new[]
        {
            await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 41)),
            await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 42, labels: 3, pooling: Pooling.Mean)),
        };
        var texts = TestAdapters.Texts;
        var online = new { inputs = texts.Select((t, i) => new { adapter = ids[i % 2], text = t }).ToArray() };
        var lines = ids.Select((id, n) => BatchCalls.Line($"r{n}", $"/v1/adapters/{id}/predict", new { inputs = texts.Select(t => new { text = t }).ToArray() }));

        async Task<(JsonElement Online, Dictionary<string, JsonElement> Batch)> AnswerAsync()
        {
            // Each run loads the adapters afresh (AdapterArtifact.Load under the default of the moment).
            var cache = app.Service<LoadedAdapterCache>();
            foreach (var id in ids)
                cache.Remove(id);
            var response = await client.PostAsJsonAsync("/v1/predict", online);
            var body = await response.JsonAsync();
            Assert.True(response.IsSuccessStatusCode, body.ToString());
            var fileId = await client.UploadBatchFileOkAsync(lines);
            var batch = await client.WaitForBatchAsync((await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict")).GetProperty("id").GetString()!);
            Assert.True(batch.GetProperty("status").GetString() == "completed" && batch.GetProperty("request_counts").GetProperty("failed").GetInt32() == 0,
                batch.ToString());
            return (body, await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!));
        }

        var reference = await AnswerAsync();
        var previous = get_default_device();
        (JsonElement Online, Dictionary<string, JsonElement> Batch) placed;
        set_default_device(new Device(DeviceType.META));
        try
        {
            using (var probe = torch.zeros(1))
                Assert.Equal(DeviceType.META, probe.device_type); // the probe is on: a stray allocation lands on meta
            placed = await AnswerAsync();
        }
        finally
        {
            set_default_device(previous);
        }

        BatchCalls.AssertSamePredictions(reference.Online, placed.Online, Tolerance);
        Assert.Equal(reference.Batch.Keys.Order(), placed.Batch.Keys.Order());
        foreach (var (customId, line) in reference.Batch)
            BatchCalls.AssertSamePredictions(line.GetProperty("response").GetProperty("body"), placed.Batch[customId].GetProperty("response").GetProperty("body"), Tolerance);
    }

    private static async Task<Guid> DevelopmentTenantAsync(ReadApplication app)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ReadDbContext>();
        return (await db.Tenants.SingleAsync(t => t.Name == Read.Api.Hosting.EmbeddedStartup.DevelopmentTenantName)).Id;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment.
        }
    }
}
