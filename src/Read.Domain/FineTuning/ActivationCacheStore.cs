namespace Read.Domain.FineTuning;

/// <summary>
/// The activation-cache directory as a store under a disk budget: least recently used first, never one a job reads.
/// "Last used" is the file's access time, which <see cref="Touch"/> sets explicitly on every open (so relatime/noatime
/// mounts do not matter). "In use" is the reader's own open handle: readers open with FileShare.Read, which .NET backs
/// with a shared flock on Unix (a share mode on Windows), so the exclusive open tried here fails while any job, in any
/// process on the host, holds the cache. Setting DOTNET_SYSTEM_IO_DISABLEFILELOCKING turns that protection off. The probe
/// holds the exclusive lock for an instant; a job opening the cache in that instant retries its open rather than take the
/// cache for missing. A writer opens its new cache before renaming it into place, so it is held from the moment it exists.
/// </summary>
public static class ActivationCacheStore
{
    public sealed record Entry(string Key, string Path, long Bytes, DateTime LastUsedAt, bool InUse);

    public sealed record EvictionResult(long BytesBefore, long BytesAfter, IReadOnlyList<string> EvictedKeys);

    /// <summary>Marks a cache as used now (its access time), the clock LRU eviction reads.</summary>
    public static void Touch(string path)
    {
        try
        {
            File.SetLastAccessTimeUtc(path, DateTime.UtcNow);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only volume keeps its caches longer; never a reason to fail a job.
        }
    }

    /// <summary>Every complete cache in <paramref name="directory"/>, least recently used first.</summary>
    public static IReadOnlyList<Entry> List(string directory, TimeSpan minimumIdle)
    {
        if (!Directory.Exists(directory))
            return [];
        var now = DateTime.UtcNow;
        return new DirectoryInfo(directory).EnumerateFiles("*" + ActivationCache.Extension)
            .Where(f => f.Extension == ActivationCache.Extension) // not the writers' ".tmp-…" files
            .Select(f => new Entry(Path.GetFileNameWithoutExtension(f.Name), f.FullName, f.Length, f.LastAccessTimeUtc,
                now - f.LastAccessTimeUtc < minimumIdle || IsHeld(f.FullName)))
            .OrderBy(e => e.LastUsedAt).ThenBy(e => e.Key, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Deletes least recently used caches until the directory fits <paramref name="budgetBytes"/>, skipping those in use.</summary>
    public static EvictionResult Evict(string directory, long budgetBytes, TimeSpan minimumIdle)
    {
        var entries = List(directory, minimumIdle);
        var before = entries.Sum(e => e.Bytes);
        var total = before;
        var evicted = new List<string>();
        foreach (var entry in entries)
        {
            if (total <= budgetBytes)
                break;
            if (entry.InUse || !TryDelete(entry.Path))
                continue;
            total -= entry.Bytes;
            evicted.Add(entry.Key);
        }
        return new EvictionResult(before, total, evicted);
    }

    private static bool IsHeld(string path)
    {
        try
        {
            using var probe = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    /// <summary>Deletes under an exclusive open, so a reader cannot start between the check and the delete.</summary>
    private static bool TryDelete(string path)
    {
        try
        {
            using var exclusive = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.None, FileOptions.DeleteOnClose);
            return true;
        }
        catch (IOException)
        {
            return false; // a reader got there first (or the file is gone)
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
