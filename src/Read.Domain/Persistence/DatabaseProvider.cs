namespace Read.Domain.Persistence;

public enum DatabaseProvider
{
    /// <summary>Embedded default: one SQLite file, one process.</summary>
    Sqlite,
    /// <summary>Scaled out: API and any number of workers share one PostgreSQL database.</summary>
    Postgres,
}
