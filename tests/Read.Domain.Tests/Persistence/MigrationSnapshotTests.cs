using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Domain.Tests.Persistence;

/// <summary>
/// Each provider's migrations describe exactly the model the code has (what `dotnet ef migrations
/// has-pending-model-changes` checks). Branches that each add a migration merge their model snapshots by text; a
/// snapshot that lost or doubled a change would leave the database one schema and EF another.
/// </summary>
public sealed class MigrationSnapshotTests
{
    [Fact]
    public void Postgres_MigrationsMatchTheModel()
    {
        // No connection is opened: the check compares the compiled model with the last migration's snapshot.
        using var context = new PostgresReadDbContext(new DbContextOptionsBuilder<PostgresReadDbContext>()
            .UseNpgsql("Host=unused;Database=unused").Options);
        Assert.False(context.Database.HasPendingModelChanges(), "the Postgres model differs from its migrations' snapshot: add a migration");
    }

    [Fact]
    public void Sqlite_MigrationsMatchTheModel()
    {
        using var context = new SqliteReadDbContext(new DbContextOptionsBuilder<SqliteReadDbContext>()
            .UseSqlite("Data Source=:memory:").Options);
        Assert.False(context.Database.HasPendingModelChanges(), "the SQLite model differs from its migrations' snapshot: add a migration");
    }
}
