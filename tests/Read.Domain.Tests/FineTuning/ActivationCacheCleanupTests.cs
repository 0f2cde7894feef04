using Microsoft.Extensions.Logging.Abstractions;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>Temporary cache files of killed writers are removed at start; a live writer's file, and finished caches, are not.</summary>
public sealed class ActivationCacheCleanupTests
{
    private static readonly TimeSpan Age = TimeSpan.FromMinutes(5);

    [Fact]
    public void DeleteStaleTemporaryFiles_RemovesAbandonedOnes_KeepsHeldYoungAndFinishedFiles()
    {
        using var directory = new TempDirectory();
        var abandoned = Create(directory, "aaaa.readact.tmp-" + Guid.NewGuid().ToString("N"), old: true);
        var held = Create(directory, "bbbb.readact.tmp-" + Guid.NewGuid().ToString("N"), old: true);
        var young = Create(directory, "cccc.readact.tmp-" + Guid.NewGuid().ToString("N"), old: false);
        var finished = Create(directory, "dddd.readact", old: true);
        var unrelated = Create(directory, "notes.tmp-1", old: true);

        int deleted;
        // A writer holds its temporary file the way ActivationCache.Write does.
        using (new FileStream(held, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            deleted = ActivationCacheCleanup.DeleteStaleTemporaryFiles(directory.Path, Age, NullLogger.Instance);

        Assert.Equal(1, deleted);
        Assert.False(File.Exists(abandoned));
        Assert.True(File.Exists(held));
        Assert.True(File.Exists(young));
        Assert.True(File.Exists(finished));
        Assert.True(File.Exists(unrelated));
        // Once its writer is gone, the held file is stale too.
        Assert.Equal(1, ActivationCacheCleanup.DeleteStaleTemporaryFiles(directory.Path, Age, NullLogger.Instance));
        Assert.False(File.Exists(held));
    }

    [Fact]
    public void DeleteStaleTemporaryFiles_MissingDirectory_DoesNothing() =>
        Assert.Equal(0, ActivationCacheCleanup.DeleteStaleTemporaryFiles(Path.Combine(Path.GetTempPath(), "read-none-" + Guid.NewGuid().ToString("N")),
            Age, NullLogger.Instance));

    private static string Create(TempDirectory directory, string name, bool old)
    {
        var path = directory.Sub(name);
        File.WriteAllBytes(path, [1, 2, 3]);
        if (old)
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow - Age * 2);
        return path;
    }
}
