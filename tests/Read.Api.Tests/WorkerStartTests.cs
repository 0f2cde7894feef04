using Read.Worker;

namespace Read.Api.Tests;

/// <summary>What a worker does before it takes jobs.</summary>
[Collection(ServiceCollection.Name)]
public sealed class WorkerStartTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Start_RemovesTemporaryCacheFilesAKilledWorkerLeftBehind()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("read-worker-start-").FullName;
        try
        {
            var cacheDirectory = Path.Combine(dataDirectory, "activation-cache");
            Directory.CreateDirectory(cacheDirectory);
            var stale = Path.Combine(cacheDirectory, "0123.readact.tmp-" + Guid.NewGuid().ToString("N"));
            await File.WriteAllBytesAsync(stale, [1, 2, 3]);
            File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1)); // long past any writer

            // Built, not started: the clean-up is part of start-up, before the Hangfire server takes a job.
            using var worker = await WorkerHost.BuildAsync(
                [$"--ConnectionStrings:Postgres={service.ConnectionString}", $"--Read:DataDirectory={dataDirectory}"]);

            Assert.False(File.Exists(stale));
        }
        finally
        {
            try { Directory.Delete(dataDirectory, recursive: true); } catch (IOException) { }
        }
    }
}
