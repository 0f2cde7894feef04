using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Read.Domain.Persistence;

public static class DatabaseServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ReadDbContext"/> (scoped) and <see cref="IDbContextFactory{ReadDbContext}"/> (for work outside a
    /// request, such as job progress) on the chosen provider.
    /// </summary>
    public static IServiceCollection AddReadDatabase(this IServiceCollection services, DatabaseProvider provider, string connectionString)
    {
        switch (provider)
        {
            case DatabaseProvider.Postgres:
                services.AddPooledDbContextFactory<PostgresReadDbContext>(o => o.UseNpgsql(connectionString));
                services.AddSingleton<IDbContextFactory<ReadDbContext>>(sp =>
                    new UpcastFactory<PostgresReadDbContext>(sp.GetRequiredService<IDbContextFactory<PostgresReadDbContext>>()));
                break;
            case DatabaseProvider.Sqlite:
                services.AddPooledDbContextFactory<SqliteReadDbContext>(o => o.UseSqlite(connectionString));
                services.AddSingleton<IDbContextFactory<ReadDbContext>>(sp =>
                    new UpcastFactory<SqliteReadDbContext>(sp.GetRequiredService<IDbContextFactory<SqliteReadDbContext>>()));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(provider));
        }
        services.AddScoped(sp => sp.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContext());
        return services;
    }

    private sealed class UpcastFactory<T>(IDbContextFactory<T> inner) : IDbContextFactory<ReadDbContext> where T : ReadDbContext
    {
        public ReadDbContext CreateDbContext() => inner.CreateDbContext();
    }
}
