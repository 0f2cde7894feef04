using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Files;
using Read.Domain.Persistence;

namespace Read.Domain.Batches;

/// <summary>
/// The one place batch code reads and writes file bytes. Today they live in <see cref="DatasetFile.Content"/>; when
/// files move to chunked storage only this class changes.
/// </summary>
internal static class BatchFileStore
{
    /// <summary>Purpose of an uploaded batch input file.</summary>
    public const string InputPurpose = "batch";

    /// <summary>Purpose of the output and error files a batch writes.</summary>
    public const string OutputPurpose = "batch_output";

    /// <summary>The bytes of the tenant's file, or null when it does not exist (another tenant's file does not either).</summary>
    public static Task<byte[]?> ReadAsync(ReadDbContext db, Guid tenant, string fileId, CancellationToken ct) =>
        db.Files.AsNoTracking().Where(f => f.Id == fileId && f.TenantId == tenant).Select(f => f.Content).SingleOrDefaultAsync(ct)!;

    /// <summary>Adds (unsaved: the caller commits it with the batch's status) a file holding <paramref name="path"/>'s bytes; returns its id.</summary>
    public static async Task<string> AddAsync(ReadDbContext db, Guid tenant, string fileName, string path, int lines, CancellationToken ct)
    {
        var content = await File.ReadAllBytesAsync(path, ct);
        var file = new DatasetFile
        {
            Id = "file-" + Guid.NewGuid().ToString("N"),
            TenantId = tenant,
            FileName = fileName,
            Purpose = OutputPurpose,
            Bytes = content.LongLength,
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(content)),
            ExampleCount = lines,
            Labels = [],
            HasTextPairs = false,
            Content = content,
            CreatedAt = DateTime.UtcNow,
        };
        db.Files.Add(file);
        return file.Id;
    }
}
