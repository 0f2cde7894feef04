using System.Security.Cryptography;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Domain.Files;

/// <summary>The bytes of uploaded files: written from a stream chunk by chunk, read back as a stream in order.</summary>
public static class FileContentStore
{
    /// <summary>Largest chunk row: big enough that a 100 MiB file is ~100 rows, small enough to sit in memory per reader.</summary>
    public const int ChunkBytes = 1024 * 1024;

    /// <summary>
    /// Copies <paramref name="source"/> into <paramref name="fileId"/>'s chunks, each saved as soon as it is full, while
    /// hashing (SHA-256) and handing every piece to <paramref name="observe"/> (the JSONL validator; return false to
    /// stop). Throws <see cref="FileTooLargeException"/> the moment more than <paramref name="limit"/> bytes arrive.
    /// On any failure, or when <paramref name="observe"/> stops, the chunks written so far are deleted.
    /// </summary>
    public static async Task<FileWriteResult> WriteAsync(
        ReadDbContext db, string fileId, Stream source, long limit, CancellationToken ct, Func<ReadOnlyMemory<byte>, bool>? observe = null)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var chunk = new byte[ChunkBytes];
        var filled = 0;
        var index = 0;
        long total = 0;
        try
        {
            while (true)
            {
                var read = await source.ReadAsync(chunk.AsMemory(filled), ct);
                if (read == 0)
                    break;
                total += read;
                if (total > limit)
                    throw new FileTooLargeException(limit);
                sha.AppendData(chunk, filled, read);
                if (observe is not null && !observe(chunk.AsMemory(filled, read)))
                {
                    await DeleteAsync(db, fileId, CancellationToken.None);
                    return new FileWriteResult(total, "", Completed: false);
                }
                filled += read;
                if (filled == ChunkBytes)
                {
                    await SaveChunkAsync(db, fileId, index++, chunk, filled, ct);
                    filled = 0;
                }
            }
            if (filled > 0 || index == 0)
                await SaveChunkAsync(db, fileId, index, chunk, filled, ct);
            return new FileWriteResult(total, Convert.ToHexStringLower(sha.GetHashAndReset()), Completed: true);
        }
        catch
        {
            await DeleteAsync(db, fileId, CancellationToken.None);
            throw;
        }
    }

    private static async Task SaveChunkAsync(ReadDbContext db, string fileId, int index, byte[] buffer, int length, CancellationToken ct)
    {
        var row = new FileChunk { FileId = fileId, Index = index, Content = buffer.AsSpan(0, length).ToArray(), CreatedAt = DateTime.UtcNow };
        db.FileChunks.Add(row);
        await db.SaveChangesAsync(ct);
        db.Entry(row).State = EntityState.Detached; // the tracker must not hold every chunk of a large file
    }

    /// <summary>The file's bytes in order, one chunk in memory at a time. The caller checks the file exists and is the tenant's.</summary>
    public static Task<Stream> OpenReadAsync(ReadDbContext db, string fileId, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Task.FromResult<Stream>(new ChunkStream(db, fileId));
    }

    /// <summary>The file's bytes in one array: only for files bounded by the upload limit that must be parsed whole.</summary>
    public static async Task<byte[]> ReadAllAsync(ReadDbContext db, string fileId, CancellationToken ct)
    {
        await using var stream = await OpenReadAsync(db, fileId, ct);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, ct);
        return buffer.ToArray();
    }

    /// <summary>Removes a file's bytes (with its row, or after a refused upload).</summary>
    public static Task<int> DeleteAsync(ReadDbContext db, string fileId, CancellationToken ct) =>
        db.FileChunks.Where(c => c.FileId == fileId).ExecuteDeleteAsync(ct);

    /// <summary>
    /// How long chunks of no file must have gone without a newer chunk before they count as left by a dead upload (a
    /// process killed mid-stream, which could not delete them). Kestrel's minimum request body rate (240 bytes/s) fills
    /// one chunk in at most about 73 minutes, so a live upload always writes a chunk more often than this; a batch
    /// writes its output chunks and then its file row within seconds.
    /// </summary>
    public static readonly TimeSpan OrphanAge = TimeSpan.FromHours(2);

    /// <summary>
    /// Deletes the chunks of file ids that have no file row and no chunk written after <paramref name="writtenBefore"/>:
    /// what uploads and batch outputs cut short by a crash left behind. Returns the chunks deleted.
    /// </summary>
    public static Task<int> DeleteOrphansAsync(ReadDbContext db, DateTime writtenBefore, CancellationToken ct)
    {
        var orphans = db.FileChunks.Where(c => !db.Files.Any(f => f.Id == c.FileId))
            .GroupBy(c => c.FileId).Where(g => g.Max(c => c.CreatedAt) < writtenBefore).Select(g => g.Key);
        return db.FileChunks.Where(c => orphans.Contains(c.FileId) && !db.Files.Any(f => f.Id == c.FileId)).ExecuteDeleteAsync(ct);
    }

    private sealed class ChunkStream(ReadDbContext db, string fileId) : Stream
    {
        private byte[] _current = [];
        private int _position;
        private int _next;
        private bool _ended;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            while (_position == _current.Length)
            {
                if (_ended)
                    return 0;
                var index = _next++;
                var next = await db.FileChunks.AsNoTracking().Where(c => c.FileId == fileId && c.Index == index)
                    .Select(c => c.Content).SingleOrDefaultAsync(ct);
                if (next is null)
                {
                    _ended = true;
                    return 0;
                }
                _current = next;
                _position = 0;
            }
            var n = Math.Min(buffer.Length, _current.Length - _position);
            _current.AsMemory(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken ct) =>
            ReadAsync(buffer.AsMemory(offset, count), ct).AsTask();
    }
}

/// <summary>What <see cref="FileContentStore.WriteAsync"/> stored: false <c>Completed</c> means the observer stopped it and nothing is kept.</summary>
public sealed record FileWriteResult(long Bytes, string Sha256, bool Completed);

/// <summary>The upload passed the size limit; nothing of it is kept.</summary>
public sealed class FileTooLargeException(long limit) : Exception($"Dataset files are limited to {limit} bytes.")
{
    public long Limit { get; } = limit;
}
