using Microsoft.EntityFrameworkCore;
using Read.Domain.Files;
using Read.Domain.Persistence;

namespace Read.Domain.Batches;

/// <summary>
/// The one place batch code reads and writes file bytes, through <see cref="FileContentStore"/> (chunked rows in the
/// database, so any worker reads what the API stored).
/// </summary>
internal static class BatchFileStore
{
    /// <summary>Purpose of an uploaded batch input file.</summary>
    public const string InputPurpose = "batch";

    /// <summary>Purpose of the output and error files a batch writes.</summary>
    public const string OutputPurpose = "batch_output";

    /// <summary>The bytes of the tenant's file, or null when it does not exist (another tenant's file does not either).</summary>
    public static async Task<byte[]?> ReadAsync(ReadDbContext db, Guid tenant, string fileId, CancellationToken ct) =>
        await db.Files.AsNoTracking().AnyAsync(f => f.Id == fileId && f.TenantId == tenant, ct)
            ? await FileContentStore.ReadAllAsync(db, fileId, ct)
            : null;

    /// <summary>
    /// Adds a file holding <paramref name="path"/>'s bytes; returns its id. Its chunks are written now; the file row is
    /// unsaved (the caller commits it with the batch's status), so until then the chunks belong to no file.
    /// </summary>
    public static async Task<string> AddAsync(ReadDbContext db, Guid tenant, string fileName, string path, int lines, CancellationToken ct)
    {
        var id = "file-" + Guid.NewGuid().ToString("N");
        FileWriteResult written;
        await using (var source = File.OpenRead(path))
            written = await FileContentStore.WriteAsync(db, id, source, long.MaxValue, ct);
        var file = new DatasetFile
        {
            Id = id,
            TenantId = tenant,
            FileName = fileName,
            Purpose = OutputPurpose,
            Bytes = written.Bytes,
            Sha256 = written.Sha256,
            ExampleCount = lines,
            Labels = [],
            HasTextPairs = false,
            CreatedAt = DateTime.UtcNow,
        };
        db.Files.Add(file);
        return file.Id;
    }
}
