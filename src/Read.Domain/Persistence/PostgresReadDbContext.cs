using Microsoft.EntityFrameworkCore;

namespace Read.Domain.Persistence;

/// <summary>The database on PostgreSQL (the scaled-out deployment); migrations under Migrations/Postgres.</summary>
public sealed class PostgresReadDbContext(DbContextOptions<PostgresReadDbContext> options) : ReadDbContext(options);
