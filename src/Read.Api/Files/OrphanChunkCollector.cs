using Microsoft.EntityFrameworkCore;
using Read.Domain.Files;
using Read.Domain.Persistence;

namespace Read.Api.Files;

/// <summary>
/// Deletes, every <see cref="Interval"/>, the chunks a crashed upload or batch left without a file row
/// (<see cref="FileContentStore.DeleteOrphansAsync"/>, once <see cref="FileContentStore.OrphanAge"/> has passed). A failed or
/// cut upload in a live process deletes its own chunks at once; this covers the process that died first. Idempotent,
/// so every API process may run it.
/// </summary>
internal sealed partial class OrphanChunkCollector(IDbContextFactory<ReadDbContext> dbFactory, ILogger<OrphanChunkCollector> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromMinutes(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        do
        {
            try
            {
                await using var db = await dbFactory.CreateDbContextAsync(stoppingToken);
                var deleted = await FileContentStore.DeleteOrphansAsync(db, DateTime.UtcNow - FileContentStore.OrphanAge, stoppingToken);
                if (deleted > 0)
                    LogCollected(deleted);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Orphan chunk collection failed; it runs again in {Interval}", Interval);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(LogLevel.Information, "Deleted {Chunks} file chunk(s) that no file owns, left by uploads or batches cut short by a crash")]
    private partial void LogCollected(int chunks);
}
