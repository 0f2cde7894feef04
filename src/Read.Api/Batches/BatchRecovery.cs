using Hangfire;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Batches;
using Read.Domain.Persistence;

namespace Read.Api.Batches;

/// <summary>
/// Hands unfinished batches to Hangfire again at start-up. Embedded mode: every one (in-memory storage forgot them all).
/// Postgres mode: only those that never reached Hangfire (the API stopped between the commit and the enqueue) and are
/// older than a minute, so a live instance's fresh batch is left to it. A batch delivered twice is harmless: the later
/// run takes it over and the earlier one can no longer publish.
/// </summary>
internal static class BatchRecovery
{
    private static readonly TimeSpan GraceAge = TimeSpan.FromMinutes(1);

    public static async Task<int> RequeueAsync(IServiceProvider services, bool embedded)
    {
        var db = services.GetRequiredService<ReadDbContext>();
        var client = services.GetRequiredService<IBackgroundJobClient>();
        var createdBefore = DateTime.UtcNow - (embedded ? TimeSpan.Zero : GraceAge);
        var query = db.Batches.Where(b => !BatchStatus.Terminal.Contains(b.Status)
                                          && b.CreatedAt <= createdBefore);
        if (!embedded)
            query = query.Where(b => b.HangfireJobId == null);
        var ids = await query.Select(b => b.Id).ToListAsync();
        foreach (var id in ids)
        {
            var hangfireId = client.Enqueue<BatchJobRunner>(BatchJobRunner.Queue, r => r.RunAsync(id, CancellationToken.None));
            await db.Batches.Where(b => b.Id == id).ExecuteUpdateAsync(s => s.SetProperty(b => b.HangfireJobId, hangfireId));
        }

        return ids.Count;
    }
}
