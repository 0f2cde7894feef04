using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Persistence;
using Read.Domain.SideNetwork;
using TorchSharp;

namespace Read.Api.Tests;

/// <summary>
/// Adapter artifacts written by the real <see cref="AdapterArtifact.Write"/> from seeded, untrained side networks
/// (random non-zero output layers, so different seeds predict differently), and published into a running API's
/// database as the job runner publishes them. Far quicker than training one per test.
/// </summary>
internal static class TestAdapters
{
    public static readonly string[] Texts =
    [
        "the movie was good", "a dull, dreary film that never ends", "wonderful", "I would not watch it again, not even for free, no matter who asked",
        "plot: fine; acting: poor", "great soundtrack but a terrible script and worse pacing", "ok", "the best film of the year by far",
    ];

    public static byte[] Artifact(Backbone backbone, int seed, int labels = 2, Pooling pooling = Pooling.Cls, int maxLength = 32)
    {
        var d = backbone.Shape.HiddenSize;
        var layers = Enumerable.Range(1, backbone.Shape.NumHiddenLayers).ToArray();
        torch.manual_seed(seed);
        using var classifier = new ReadClassifier(new ReadSideNetwork(d, 8, zeroInitOutput: false), d, labels, pooling);
        var names = Enumerable.Range(0, labels).Select(i => $"label-{i:D2}").ToArray();
        return AdapterArtifact.Write(
            new AdapterConfig(backbone.Id, backbone.WeightsHash, d, RecurrentCell.Gru, 8, LayerAggregation.Mean, layers, names, maxLength,
                AdapterTokenizerConfig.From(backbone.TokenizerSettings), Pooling: pooling, Architecture: backbone.Architecture, ModelType: backbone.ModelType),
            classifier, new { });
    }

    /// <summary>Stores the artifact as a published adapter of <paramref name="tenant"/> and returns its id.</summary>
    public static async Task<string> PublishAsync(ReadApplication app, Guid tenant, byte[] artifact, string backboneId = BackboneRegistry.TinyBackboneId)
    {
        var id = "adapter-test-" + Guid.NewGuid().ToString("N")[..12];
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ReadDbContext>();
        // A backbone id the deployment does not register (one removed from its configuration since) has no weights to hash.
        var registry = app.Service<BackboneRegistry>();
        var weightsHash = registry.Contains(backboneId) ? registry.Get(backboneId).WeightsHash : new string('0', 64);
        db.Adapters.Add(new AdapterRecord
        {
            Id = id, TenantId = tenant, JobId = "ftjob-test-" + Guid.NewGuid().ToString("N"), BackboneId = backboneId,
            BackboneWeightsHash = weightsHash, ConfigJson = "{}", MetricsJson = "{}", Artifact = artifact,
            SizeBytes = artifact.Length, Sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(artifact)),
            CreatedAt = DateTime.UtcNow,
        });
        await db.SaveChangesAsync();
        return id;
    }
}

/// <summary>Tenants whose id the test needs (to publish adapters for them).</summary>
internal static class TestTenants
{
    public static async Task<(HttpClient Client, Guid Id)> CreateAsync(ReadApplication app, string name)
    {
        using var admin = app.CreateClient(ReadApplication.AdminKey);
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        return (app.CreateClient(body.GetProperty("api_key").GetString()), body.GetProperty("tenant_id").GetGuid());
    }
}
