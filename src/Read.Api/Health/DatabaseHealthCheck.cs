using Microsoft.Extensions.Diagnostics.HealthChecks;
using Read.Domain.Persistence;

namespace Read.Api.Health;

internal sealed class DatabaseHealthCheck(ReadDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await db.Database.CanConnectAsync(cancellationToken)
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy("The database is not reachable.");
}
