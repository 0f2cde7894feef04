namespace Read.Domain.Files;

/// <summary>
/// One piece (at most <see cref="FileContentStore.ChunkBytes"/>) of an uploaded file's bytes, in the database so any
/// worker can read it without a shared volume. No foreign key to <c>files</c>: chunks are written while the upload
/// streams in, before the file row (whose size, hash and counts are known only at the end) exists.
/// </summary>
public sealed class FileChunk
{
    public required string FileId { get; init; }
    public required int Index { get; init; }
    public required byte[] Content { get; init; }
    /// <summary>When the chunk was written: chunks of no file whose newest is old enough belong to an upload that died.</summary>
    public required DateTime CreatedAt { get; init; }
}
