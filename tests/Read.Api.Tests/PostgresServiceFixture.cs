using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Read.Domain.Backbones.Llama;
using Read.Domain.Jobs;
using Read.Worker;

namespace Read.Api.Tests;

/// <summary>
/// The scaled-out deployment for real: a fresh Postgres database, the API on Kestrel in Postgres mode (never trains), and a
/// separate Read.Worker host running a Hangfire server on Postgres storage. Each has its own data directory, as on two machines.
/// </summary>
public sealed class PostgresServiceFixture : IAsyncLifetime
{
    public const long MaxUploadBytes = 20_000;
    public const string LlamaBackboneId = "tiny-llama";

    private PostgresDatabase? _database;
    private string _root = "";
    internal ReadApplication Api { get; private set; } = null!;
    public IHost Worker { get; private set; } = null!;
    public string ConnectionString => _database!.ConnectionString;
    public string ApiDataDirectory => Path.Combine(_root, "api");

    public async Task InitializeAsync()
    {
        _database = await PostgresDatabase.CreateAsync();
        _root = Directory.CreateTempSubdirectory("read-pg-").FullName;
        // A Llama-family checkpoint "from the user's disk", registered on both machines as a deployment would.
        var llama = Path.Combine(_root, "checkpoints", LlamaBackboneId);
        TinyLlamaCheckpoint.Write(llama, new TinyLlamaCheckpoint.Options(), seed: 11);
        Api = ReadApplication.Start(ApiDataDirectory, _database.ConnectionString, new Dictionary<string, string?>
        {
            ["Read:MaxUploadBytes"] = MaxUploadBytes.ToString(),
            [$"Read:Backbones:Checkpoints:{LlamaBackboneId}"] = llama,
            // Webhook tests receive on loopback, and should not wait the production poll and retry delays.
            ["Read:Webhooks:AllowPrivateNetworks"] = "true",
            ["Read:Webhooks:PollInterval"] = "00:00:00.100",
            ["Read:Webhooks:RetryBaseDelay"] = "00:00:00.300",
        });
        Worker = await WorkerHost.BuildAsync(
            [$"--ConnectionStrings:Postgres={_database.ConnectionString}", $"--Read:DataDirectory={Path.Combine(_root, "worker")}",
             $"--Read:Backbones:Checkpoints:{LlamaBackboneId}={llama}"],
            builder => builder.Services.AddSingleton<IJobStageListener, StageProbe>());
        await Worker.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await Worker.StopAsync();
        Worker.Dispose();
        await Api.DisposeAsync();
        if (_database is not null)
            await _database.DisposeAsync();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}
