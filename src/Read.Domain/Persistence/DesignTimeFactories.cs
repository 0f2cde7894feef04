using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Read.Domain.Persistence;

// Used only by `dotnet ef migrations add`; never at run time.
internal sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresReadDbContext>
{
    public PostgresReadDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresReadDbContext>().UseNpgsql("Host=localhost;Database=read_design").Options);
}

internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteReadDbContext>
{
    public SqliteReadDbContext CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteReadDbContext>().UseSqlite("Data Source=read_design.db").Options);
}
