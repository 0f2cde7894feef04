using Microsoft.Extensions.Logging;

namespace Read.Domain.FineTuning;

/// <summary>
/// Removes temporary cache files (<c>*.readact.tmp-*</c>) that a killed process left behind: a precompute writes to a
/// temporary file and renames it when done, so a <c>kill -9</c> mid-write leaves the temporary file for good.
/// </summary>
public static class ActivationCacheCleanup
{
    /// <summary>Younger temporary files are skipped, whatever their lock says: a writer may be about to open one.</summary>
    public static readonly TimeSpan MinimumAge = TimeSpan.FromMinutes(5);

    private static readonly string TemporaryPattern = "*" + ActivationCache.Extension + ".tmp-*";

    /// <summary>
    /// Deletes the temporary files in <paramref name="directory"/> older than <paramref name="minimumAge"/> that no
    /// process holds open. A writer holds its file with FileShare.None (an exclusive lock on Unix too), so opening
    /// it the same way fails while it is in use, and such a file is skipped. Returns how many were deleted.
    /// </summary>
    public static int DeleteStaleTemporaryFiles(string directory, TimeSpan minimumAge, ILogger logger)
    {
        if (!Directory.Exists(directory))
            return 0;
        var cutoff = DateTime.UtcNow - minimumAge;
        var deleted = 0;
        foreach (var path in Directory.EnumerateFiles(directory, TemporaryPattern))
        {
            try
            {
                if (File.GetLastWriteTimeUtc(path) > cutoff)
                    continue;
                // Deleted on close while we hold the exclusive handle: no writer can open it in between.
                using (new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose))
                {
                }

                deleted++;
                logger.LogInformation("Deleted stale temporary activation cache file {Path}", path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // In use by a live writer, or already gone: either way not ours to delete now.
                logger.LogDebug(e, "Kept temporary activation cache file {Path}", path);
            }
        }

        return deleted;
    }
}
