using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>
/// A Postgres login role of its own for one worker, so a test can cut that worker off the database for real while the
/// test (and other workers) keep theirs: <see cref="CutOffAsync"/> forbids the role to log in and terminates its
/// connections (pg_terminate_backend), as a network partition or a database restart would look to that worker.
/// </summary>
internal sealed class DatabaseRole : IAsyncDisposable
{
    private readonly string _server;
    private readonly ServiceProvider _services;

    private DatabaseRole(string server, string name, string connectionString)
    {
        _server = server;
        Name = name;
        ConnectionString = connectionString;
        _services = new Microsoft.Extensions.DependencyInjection.ServiceCollection()
            .AddReadDatabase(DatabaseProvider.Postgres, connectionString).BuildServiceProvider();
    }

    public string Name { get; }

    public string ConnectionString { get; }

    /// <summary>Database access as this role (its own connection pool).</summary>
    public IDbContextFactory<ReadDbContext> Factory => _services.GetRequiredService<IDbContextFactory<ReadDbContext>>();

    /// <summary>A role with read and write access to every table of <paramref name="databaseConnectionString"/>'s (migrated) database.</summary>
    public static async Task<DatabaseRole> CreateAsync(string databaseConnectionString)
    {
        var name = "read_worker_" + Guid.NewGuid().ToString("N")[..12];
        var server = Environment.GetEnvironmentVariable(PostgresDatabase.ServerVariable)!;
        await ExecuteAsync(server, $"CREATE ROLE {name} LOGIN");
        await ExecuteAsync(databaseConnectionString,
            $"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name};");
        var connectionString = new NpgsqlConnectionStringBuilder(databaseConnectionString) { Username = name, Password = null }.ConnectionString;
        return new DatabaseRole(server, name, connectionString);
    }

    /// <summary>From now on the role cannot connect, and the connections it has are closed under it.</summary>
    public async Task CutOffAsync()
    {
        await ExecuteAsync(_server, $"ALTER ROLE {Name} NOLOGIN");
        await ExecuteAsync(_server, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{Name}'");
    }

    public Task RestoreAsync() => ExecuteAsync(_server, $"ALTER ROLE {Name} LOGIN");

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Call after the role's database is dropped (its grants go with it); the role is cluster-wide.</summary>
    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        await ExecuteAsync(_server, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{Name}'");
        await ExecuteAsync(_server, $"DROP ROLE IF EXISTS {Name}");
    }
}
