using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog;

namespace Read.ServiceDefaults;

/// <summary>Logging and Hangfire set-up shared by the API and the worker, so the two never drift apart.</summary>
public static class ReadServiceDefaults
{
    /// <summary>
    /// Serilog from configuration, to the console; <paramref name="process"/> tags every event (api, worker). Each host
    /// logs through its own logger, never the static <c>Log.Logger</c>: with two hosts in one process (tests) the static
    /// one belongs to whichever started last, or is a no-op once any host stopped, so a category first used later would
    /// log to the other host's sinks or nowhere.
    /// </summary>
    public static IServiceCollection AddReadLogging(this IServiceCollection services, IConfiguration configuration, string process) =>
        services.AddSerilog(preserveStaticLogger: true, configureLogger: (sp, logger) => logger
            .ReadFrom.Configuration(configuration)
            .Enrich.FromLogContext()
            .ReadFrom.Services(sp) // sinks registered in DI (tests capture request logs this way)
            .Enrich.WithProperty("Process", process)
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}"));

    /// <summary>The serializer settings every Hangfire client and server of ours must agree on.</summary>
    public static IGlobalConfiguration UseReadSerialization(this IGlobalConfiguration hangfire) =>
        hangfire.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
            .UseSimpleAssemblyNameTypeSerializer()
            .UseRecommendedSerializerSettings();

    /// <summary>
    /// How often an idle worker asks the queue for a job. Hangfire.PostgreSql's default is 15 s, which on top of the lease
    /// (30 s) and the sweep (15 s) let a dead worker's job wait up to a minute; at 1 s the worst case is 46 s
    /// (docs/decisions/014-checkpoints-leases.md), and a new job starts within a second of being enqueued. The cost is one
    /// small query per idle Hangfire worker thread per second.
    /// </summary>
    private static readonly TimeSpan QueuePollInterval = TimeSpan.FromSeconds(1);

    /// <summary>Hangfire's Postgres storage as the API (enqueueing) and the workers (running) share it.</summary>
    public static IGlobalConfiguration UseReadPostgresStorage(this IGlobalConfiguration hangfire, string connectionString) =>
        hangfire.UsePostgreSqlStorage(o => o.UseNpgsqlConnection(connectionString), StorageOptions());

    /// <summary>The storage options <see cref="UseReadPostgresStorage"/> applies.</summary>
    private static PostgreSqlStorageOptions StorageOptions() => new()
    {
        // A worker that dies mid-job stops extending its claim; after this long another worker takes the job
        // (the runner resumes it). Sliding, so long jobs on a live worker are never handed out twice. The lease sweep
        // hands a dead worker's job out long before this (Read:JobLeaseDuration + Read:JobSweepInterval).
        InvisibilityTimeout = TimeSpan.FromMinutes(5),
        UseSlidingInvisibilityTimeout = true,
        QueuePollInterval = QueuePollInterval,
    };
}
