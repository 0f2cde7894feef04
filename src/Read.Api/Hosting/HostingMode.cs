using Read.Domain.Persistence;

namespace Read.Api.Hosting;

/// <summary>
/// Which deployment this process is part of. Without a Postgres connection string the API is the whole system
/// (SQLite, in-memory Hangfire, in-process training); with one it only serves HTTP and enqueues.
/// </summary>
internal sealed record HostingMode(DatabaseProvider Provider, string ConnectionString)
{
    public bool IsEmbedded => Provider == DatabaseProvider.Sqlite;

    public static HostingMode From(IConfiguration configuration, string dataDirectory)
    {
        var postgres = configuration.GetConnectionString("Postgres");
        if (!string.IsNullOrWhiteSpace(postgres))
            return new HostingMode(DatabaseProvider.Postgres, postgres);
        Directory.CreateDirectory(dataDirectory);
        return new HostingMode(DatabaseProvider.Sqlite, $"Data Source={Path.Combine(dataDirectory, "read.db")}");
    }
}
