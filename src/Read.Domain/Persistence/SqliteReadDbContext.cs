using Microsoft.EntityFrameworkCore;

namespace Read.Domain.Persistence;

/// <summary>The database on a SQLite file (the embedded single-process default); migrations under Migrations/Sqlite.</summary>
public sealed class SqliteReadDbContext(DbContextOptions<SqliteReadDbContext> options) : ReadDbContext(options);
