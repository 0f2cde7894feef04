using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Hosting;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.ServiceDefaults;

namespace Read.Worker;

/// <summary>
/// A worker process: a Hangfire server on queues "training" and "batch" over the shared Postgres, running <see cref="FineTuneJobRunner"/>.
/// Public so tests can host a real worker in-process.
/// </summary>
public static class WorkerHost
{
    /// <param name="configure">Extra registrations (tests add stage listeners here).</param>
    public static async Task<IHost> BuildAsync(string[] args, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(args);
        var configuration = builder.Configuration;
        var connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new InvalidOperationException(
                "Read.Worker needs ConnectionStrings__Postgres. For a single process without Postgres, run Read.Api alone (embedded mode).");

        builder.Services.AddReadLogging(configuration, "worker");
        builder.Services.AddOptions<ReadOptions>().BindConfiguration(ReadOptions.Section)
            .Validate(o => o.WorkerCount > 0, "Read:WorkerCount must be positive").ValidateOnStart();
        builder.Services.AddOptions<BackboneOptions>().BindConfiguration($"{ReadOptions.Section}:Backbones");
        builder.Services.AddOptions<Read.Domain.FineTuning.TrainingOptions>().BindConfiguration(Read.Domain.FineTuning.TrainingOptions.Section);
        builder.Services.AddReadBackboneDefaults();
        builder.Services.AddReadCore(DatabaseProvider.Postgres, connectionString);

        builder.Services.AddHangfire(hangfire => hangfire.UseReadSerialization().UseReadPostgresStorage(connectionString));
        builder.Services.AddHangfireServer((sp, server) =>
        {
            server.Queues = [FineTuneJobRunner.Queue, Read.Domain.Batches.BatchJobRunner.Queue];
            server.WorkerCount = sp.GetRequiredService<IOptions<ReadOptions>>().Value.WorkerCount;
            server.ServerName = $"read-worker:{Environment.MachineName}:{Environment.ProcessId}";
        });
        builder.Services.AddHostedService<JobLeaseSweep>();
        configure?.Invoke(builder);

        var host = builder.Build();
        // The API migrates too; EF takes a database lock, so concurrent starts are safe.
        await using (var scope = host.Services.CreateAsyncScope())
            await scope.ServiceProvider.GetRequiredService<ReadDbContext>().Database.MigrateAsync();
        StaleCacheCleanup.Run(host.Services.GetRequiredService<IOptions<ReadOptions>>().Value,
            host.Services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(WorkerHost)));
        return host;
    }
}
