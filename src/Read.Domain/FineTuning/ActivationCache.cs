using Read.Domain.Configuration;
using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;
using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using Read.Domain.Datasets;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// Backbone hidden states of a list of examples, computed once and stored on disk (docs/activation-cache.md): the
/// first token (cls pooling) or every non-padding position (mean pooling, packed), for a set of layers, as fp16 or
/// bf16. Content-addressed, so every job on the same backbone, data and settings reuses it; written atomically;
/// verified on open (header checksum, exact length, index checksum, per-block payload checksums) and rebuilt when
/// anything is off. Training reads it batch by batch with positional reads: the file is never loaded whole.
/// An instance is not thread-safe (it reuses one read buffer).
/// </summary>
internal sealed class ActivationCache : IDisposable
{
    public const int FormatVersion = 2;
    public const string Extension = ".readact";
    private const int PrefixSize = 16; // magic, version, header length
    private const int HashSize = 32;
    private const int IndexEntrySize = 16; // int64 first position, int32 positions, int32 reserved
    private const int BlockHashSize = 8; // first 8 bytes of the block's SHA-256
    private const int BlockBytes = 1 << 20;
    private const int Alignment = 4096;
    private const int MaxHeaderBytes = 1 << 20;
    private const int PrecomputeMaxExamples = 64;
    private const int PrecomputeTokenBudget = 4096;
    private static ReadOnlySpan<byte> Magic => "READACT\0"u8;

    /// <summary>Stored bytes per number: fp16 and bf16 both.</summary>
    public const int BytesPerNumber = 2;

    /// <summary>Largest batch one <see cref="Read"/> serves: its read buffer is one byte array.</summary>
    public static readonly long MaxBatchBytes = Array.MaxLength;

    private readonly SafeFileHandle handle;
    private readonly long[] offsets;
    private readonly int[] lengths;
    private byte[] buffer = [];

    private ActivationCache(string path, SafeFileHandle handle, ActivationCacheHeader header, long[] offsets, int[] lengths)
    {
        Path = path;
        this.handle = handle;
        Header = header;
        this.offsets = offsets;
        this.lengths = lengths;
        FileBytes = RandomAccess.GetLength(handle);
    }

    public string Path { get; }

    public ActivationCacheHeader Header { get; }

    public int Count => Header.Examples;

    public long FileBytes { get; }

    /// <summary>Where <see cref="Read"/> places its batches: the backbone's device (set when the cache is opened).</summary>
    public ReadDevice Device { get; private set; } = ReadDevice.Cpu;

    private int Channels => Header.Layers.Count;

    // long, so that positions × row bytes never overflows before the batch is checked against MaxBatchBytes.
    private long RowBytes => (long)Channels * Header.HiddenSize * BytesPerNumber;

    /// <summary>Stored positions of one example (1 with cls pooling).</summary>
    public int PositionsOf(int example) => lengths[example];

    /// <summary>Reads the states of <paramref name="examples"/> (dataset indices) as one packed float32 batch.</summary>
    public PackedBatch Read(ReadOnlySpan<long> examples)
    {
        long total = 0;
        foreach (var e in examples)
            total += lengths[e];
        var bytes = total * RowBytes;
        if (bytes > MaxBatchBytes)
            throw new InvalidOperationException(
                $"A batch of {examples.Length} examples needs {bytes} bytes of activations, more than one read serves ({MaxBatchBytes}); use a smaller batch_size.");
        if (buffer.Length < bytes)
            buffer = new byte[bytes];
        var segments = new long[total];
        long position = 0;
        for (var b = 0; b < examples.Length; b++)
        {
            var e = examples[b];
            // Below MaxBatchBytes (an int) every offset and length inside the buffer fits an int.
            var span = buffer.AsSpan((int)(position * RowBytes), (int)(lengths[e] * RowBytes));
            ReadExactly(Header.PayloadOffset + offsets[e] * RowBytes, span);
            segments.AsSpan((int)position, lengths[e]).Fill(b);
            position += lengths[e];
        }

        using var scope = NewDisposeScope();
        var raw = empty([total, Channels, Header.HiddenSize], DtypeOf(Header.Dtype), device: CPU);
        raw.bytes = buffer.AsSpan(0, (int)bytes);
        // Moved in the stored 2-byte dtype (half the transfer), widened on the device.
        var states = raw.to(Device.Torch).to_type(ScalarType.Float32).MoveToOuterDisposeScope(); // (P, C, d)
        var segmentTensor = tensor(segments, ScalarType.Int64, device: Device.Torch).MoveToOuterDisposeScope(); // (P)
        return new PackedBatch(states, segmentTensor, examples.Length);
    }

    public void Dispose() => handle.Dispose();

    /// <summary>
    /// Deletes the temporary files of writes that never finished (a worker killed during precompute): files named
    /// <c>*.readact.tmp-*</c> older than <paramref name="minimumAge"/> that no process holds open. A live writer holds
    /// its file with FileShare.None, so opening it exclusively fails and it is kept. Returns the files and bytes removed.
    /// </summary>
    public static (int Files, long Bytes) RemoveStaleTemporaryFiles(string directory, TimeSpan minimumAge)
    {
        if (!Directory.Exists(directory))
            return (0, 0);
        var removed = 0;
        long bytes = 0;
        foreach (var path in Directory.EnumerateFiles(directory, "*" + Extension + ".tmp-*"))
        {
            try
            {
                var info = new FileInfo(path);
                if (DateTime.UtcNow - info.LastWriteTimeUtc < minimumAge)
                    continue;
                using (new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                    // Opened exclusively: no writer has it.
                }

                var length = info.Length;
                File.Delete(path);
                removed++;
                bytes += length;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Held by a live writer, gone already, or not ours: left alone.
            }
        }

        return (removed, bytes);
    }

    /// <summary>SHA-256 over the examples' texts and pairs, in order, each length-prefixed.</summary>
    public static string DatasetHash(IReadOnlyList<LabeledExample> examples)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AddField(hash, examples.Count.ToString(CultureInfo.InvariantCulture));
        foreach (var example in examples)
        {
            AddField(hash, example.Text);
            AddField(hash, example.TextPair);
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Content address: format, scope, backbone id and weights, dataset, tokenizer settings, max length, pooling, layer
    /// set, dtype.
    /// </summary>
    public static string Key(Backbone backbone, string datasetHash, ActivationCacheSpec spec)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AddField(hash, $"read-activations v{FormatVersion}");
        AddField(hash, $"scope={spec.Scope}");
        AddField(hash, backbone.Id);
        AddField(hash, backbone.WeightsHash);
        AddField(hash, datasetHash);
        AddField(hash, $"{spec.Tokenizer} truncation=longest_first max_length={spec.MaxLength}");
        // The API names (mean, fp16), not the enum members: keys stay those of caches written before the enums.
        AddField(hash, $"pooling={JsonEnum<Pooling>.Name(spec.Pooling)} layers={string.Join(',', spec.Layers)} dtype={JsonEnum<CacheDtype>.Name(spec.Dtype)}");
        // Only a reduced-precision backbone adds a field, so float32 keys (every cache written so far) stay as they were.
        if (backbone.PrecisionTag.Length > 0)
            AddField(hash, backbone.PrecisionTag);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Opens the intact cache for these examples, or runs the backbone (no_grad, length-sorted batches, each example
    /// once) and writes it. Hit is true when the backbone was not called.
    /// </summary>
    /// <param name="precompute">How to run the backbone on a miss (<see cref="PrecomputeSelection"/>); auto when null.</param>
    public static (ActivationCache Cache, bool Hit) GetOrCreate(
        Backbone backbone, IReadOnlyList<LabeledExample> examples, ActivationCacheSpec spec, string directory,
        Action<double>? progress, CancellationToken cancellationToken, PrecomputeRequest? precompute = null)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(spec);
        var expected = Expected(backbone, examples, spec);
        var path = System.IO.Path.Combine(directory, Key(backbone, expected.DatasetSha256, spec) + Extension);
        if (File.Exists(path))
        {
            // A file that does not verify is never trained on: it is rebuilt below.
            var existing = TryOpen(path, expected, verifyPayload: true, cancellationToken);
            if (existing is not null)
            {
                existing.Device = backbone.Device;
                ActivationCacheStore.Touch(path); // LRU clock for eviction
                progress?.Invoke(1.0);
                return (existing, true);
            }
        }

        Directory.CreateDirectory(directory);
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N");
        SafeFileHandle? reader = null;
        try
        {
            Write(backbone, examples, spec, expected, temporary, progress, precompute ?? PrecomputeRequest.Default, cancellationToken);
            // The reader's handle (and its shared lock, which eviction respects) is taken before the file gets its final
            // name, so no eviction can come between the rename and the open; the access time is set now too, since it
            // would otherwise be the temporary file's creation time, the start of the precompute.
            reader = File.OpenHandle(temporary, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            ActivationCacheStore.Touch(temporary);
            File.Move(temporary, path, overwrite: true);
            var written = Verify(path, reader, expected, verifyPayload: false, cancellationToken)
                ?? throw new InvalidDataException($"The activation cache just written to {path} does not read back.");
            reader = null; // the cache owns it now
            written.Device = backbone.Device;
            return (written, false);
        }
        finally
        {
            reader?.Dispose();
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
    }

    // fp16 tops out at 65504; bf16 has float32's range. One reduction per batch, not a loop in C#.
    internal static void CheckStorable(Tensor states, CacheDtype dtype)
    {
        using var finite = states.isfinite().all();
        if (!finite.item<bool>())
            throw new NonFiniteValueException(NonFiniteValueException.NonFiniteActivations, "The backbone produced NaN or infinite hidden states; nothing was cached.");
        if (dtype != CacheDtype.Fp16)
            return;
        using var largest = states.abs().max();
        var value = largest.item<float>();
        if (value > 65504f)
        {
            throw new NonFiniteValueException(NonFiniteValueException.NonFiniteActivations,
                $"A hidden state of magnitude {value} does not fit the fp16 activation cache (max 65504); use cache_dtype bf16.");
        }
    }

    /// <summary>The header fields a cache for these inputs must carry (sizes and checksums left open).</summary>
    private static ActivationCacheHeader Expected(Backbone backbone, IReadOnlyList<LabeledExample> examples, ActivationCacheSpec spec) => new()
    {
        BackboneId = backbone.Id,
        BackboneWeightsHash = backbone.WeightsHash,
        DatasetSha256 = DatasetHash(examples),
        Scope = spec.Scope,
        DoLowerCase = spec.Tokenizer.LowerCase,
        StripAccents = spec.Tokenizer.StripAccents,
        TokenizeChineseChars = spec.Tokenizer.TokenizeChineseChars,
        MaxLength = spec.MaxLength,
        Pooling = spec.Pooling,
        Layers = spec.Layers.ToArray(),
        Dtype = spec.Dtype,
        HiddenSize = backbone.Shape.HiddenSize,
        Examples = examples.Count,
        Positions = 0,
        PayloadOffset = 0,
        PayloadBytes = 0,
        BlockBytes = BlockBytes,
        IndexOffset = 0,
        IndexBytes = 0,
        IndexSha256 = new string('0', 64),
    };

    private static void Write(
        Backbone backbone, IReadOnlyList<LabeledExample> examples, ActivationCacheSpec spec, ActivationCacheHeader expected,
        string path, Action<double>? progress, PrecomputeRequest precompute, CancellationToken cancellationToken)
    {
        var streamed = PrecomputeSelection.UseStreamed(backbone, precompute.Mode);
        var texts = examples.Select(e => e.Text).ToList();
        var pairs = examples.Select(e => e.TextPair).ToList();
        var tokens = TokenLengths.Of(backbone, texts, pairs, spec.MaxLength, spec.Tokenizer);
        precompute.TokensCounted?.Invoke(tokens.Sum(l => (long)l));
        var stored = spec.Pooling.IsSinglePosition() ? tokens.Select(_ => 1).ToArray() : tokens;
        var positions = stored.Sum(l => (long)l);
        var rowBytes = (long)spec.Layers.Count * backbone.Shape.HiddenSize * 2;
        var payloadBytes = positions * rowBytes;
        var blocks = (payloadBytes + BlockBytes - 1) / BlockBytes;
        var header = expected with { Positions = positions, PayloadBytes = payloadBytes, IndexBytes = examples.Count * (long)IndexEntrySize + blocks * BlockHashSize };
        // The payload starts at the first aligned offset after the header; the header holds that offset, so settle both.
        // Only the index checksum changes afterwards, and it has a fixed width.
        long payloadOffset = Alignment;
        int headerLength;
        while (true)
        {
            header = header with { PayloadOffset = payloadOffset, IndexOffset = payloadOffset + payloadBytes };
            headerLength = JsonSerializer.SerializeToUtf8Bytes(header).Length;
            var needed = Align(PrefixSize + headerLength + HashSize);
            if (needed <= payloadOffset)
                break;
            payloadOffset = needed;
        }

        var offsets = new long[examples.Count];
        var blockHashes = new byte[blocks * BlockHashSize];
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16);
        stream.Position = payloadOffset;
        var blockWriter = new BlockHasher(stream, blockHashes);
        var dtype = DtypeOf(spec.Dtype);
        long written = 0;
        var batches = TokenLengths.SortedBatches(tokens, PrecomputeMaxExamples, PrecomputeTokenBudget);
        EncodedBatch Encode(int[] batch) => backbone.Encode(batch.Select(i => texts[i]).ToList(), batch.Select(i => pairs[i]).ToList(), spec.MaxLength, spec.Tokenizer);
        // Both paths yield each batch's (P_b, C, d) states in the cache dtype, in batch order; the bytes written are the same.
        var encodedBatches = streamed ? batches.Select(Encode).ToList() : null;
        try
        {
            var source = streamed
                ? StreamedPrecompute.States(backbone, encodedBatches!, spec, dtype, System.IO.Path.GetDirectoryName(path)!, progress, precompute.StepCompleted, cancellationToken)
                : ResidentStates(backbone, batches, Encode, spec, dtype, progress, examples.Count, cancellationToken);
            var b = 0;
            foreach (var states in source)
            {
                using var halves = states;
                var batch = batches[b++];
                var batchPositions = batch.Sum(i => (long)stored[i]);
                if (halves.shape[0] != batchPositions)
                    throw new InvalidOperationException("Token counts changed between tokenization passes.");
                foreach (var i in batch)
                {
                    offsets[i] = written;
                    written += stored[i];
                }

                blockWriter.Write(halves.bytes);
            }
        }
        finally
        {
            foreach (var encoded in encodedBatches ?? [])
                encoded.Dispose();
        }

        blockWriter.Finish();
        var index = new byte[header.IndexBytes];
        for (var i = 0; i < examples.Count; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(index.AsSpan(i * IndexEntrySize), offsets[i]);
            BinaryPrimitives.WriteInt32LittleEndian(index.AsSpan(i * IndexEntrySize + 8), stored[i]);
        }

        blockHashes.CopyTo(index.AsSpan(examples.Count * IndexEntrySize));
        stream.Write(index);
        header = header with { IndexSha256 = Convert.ToHexStringLower(SHA256.HashData(index)) };
        var prefix = Prefix(header);
        if (prefix.Length != PrefixSize + headerLength)
            throw new InvalidOperationException("The cache header changed length.");
        stream.Position = 0;
        stream.Write(prefix);
        stream.Write(SHA256.HashData(prefix));
        stream.Flush(flushToDisk: true);
    }

    /// <summary>The ordinary precompute: the whole backbone forward per batch, then the gather.</summary>
    private static IEnumerable<Tensor> ResidentStates(
        Backbone backbone, List<int[]> batches, Func<int[], EncodedBatch> encode, ActivationCacheSpec spec, ScalarType dtype,
        Action<double>? progress, int examples, CancellationToken cancellationToken)
    {
        var done = 0;
        foreach (var batch in batches)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return ResidentBatch(backbone, encode(batch), spec, dtype);
            done += batch.Length;
            progress?.Invoke((double)done / examples);
        }
    }

    private static Tensor ResidentBatch(Backbone backbone, EncodedBatch batch, ActivationCacheSpec spec, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        using var encoded = batch;
        var hidden = backbone.HiddenStates(encoded); // L + 1 of (B, S, d)
        var (states, _) = HiddenStateGather.Gather(hidden, encoded.AttentionMask, spec.Layers, spec.Pooling); // (P_b, C, d)
        CheckStorable(states, spec.Dtype);
        return states.to_type(dtype).cpu().contiguous().MoveToOuterDisposeScope(); // the file is written from host memory
    }

    /// <summary>Opens and verifies a cache file; null when it is not a sound cache for <paramref name="expected"/>.</summary>
    private static ActivationCache? TryOpen(string path, ActivationCacheHeader expected, bool verifyPayload, CancellationToken cancellationToken)
    {
        if (OpenShared(path) is not { } handle)
            return null;

        try
        {
            var cache = Verify(path, handle, expected, verifyPayload, cancellationToken);
            if (cache is null)
                handle.Dispose();
            return cache;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A read handle with the shared lock that marks the cache in use. Eviction and the cache listing probe "in use" by
    /// taking the exclusive lock for an instant; an open that meets that instant fails with a sharing violation, which is
    /// not a missing cache, so it is tried again (a cache evicted meanwhile is then missing indeed, and rebuilt). Nothing
    /// else takes the exclusive lock on a final cache path (writers hold their temporary file), so the retries run on a
    /// time budget, not a count: on a loaded host the probing thread can be descheduled while it holds the lock, and a
    /// count of short sleeps then ran out and rebuilt a cache that was there all along (seen in CI).
    /// </summary>
    private static SafeFileHandle? OpenShared(string path)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return null;
            }
            catch (IOException) when (waited.Elapsed < OpenRetryBudget)
            {
                Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(50, 1 << Math.Min(attempt, 6))));
            }
            catch (IOException)
            {
                return null;
            }
        }
    }

    private static readonly TimeSpan OpenRetryBudget = TimeSpan.FromSeconds(10);

    private static ActivationCache? Verify(string path, SafeFileHandle handle, ActivationCacheHeader expected, bool verifyPayload, CancellationToken cancellationToken)
    {
        var length = RandomAccess.GetLength(handle);
        var prefix = new byte[PrefixSize];
        if (length < PrefixSize || RandomAccess.Read(handle, prefix, 0) != PrefixSize || !prefix.AsSpan(0, 8).SequenceEqual(Magic)
            || BinaryPrimitives.ReadInt32LittleEndian(prefix.AsSpan(8)) != FormatVersion)
            return null;
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(prefix.AsSpan(12));
        if (headerLength is < 2 or > MaxHeaderBytes || length < PrefixSize + headerLength + HashSize)
            return null;
        var head = new byte[PrefixSize + headerLength + HashSize];
        if (!TryReadExactly(handle, 0, head))
            return null;
        if (!SHA256.HashData(head.AsSpan(0, PrefixSize + headerLength)).AsSpan().SequenceEqual(head.AsSpan(PrefixSize + headerLength)))
            return null;
        ActivationCacheHeader header;
        try
        {
            header = JsonSerializer.Deserialize<ActivationCacheHeader>(head.AsSpan(PrefixSize, headerLength))!;
        }
        catch (JsonException)
        {
            return null;
        }

        var rowBytes = (long)header.Layers.Count * header.HiddenSize * 2;
        var blocks = header.BlockBytes > 0 ? (header.PayloadBytes + header.BlockBytes - 1) / header.BlockBytes : -1;
        var sound = header.Format == expected.Format && header.BackboneId == expected.BackboneId
            && header.BackboneWeightsHash == expected.BackboneWeightsHash && header.DatasetSha256 == expected.DatasetSha256
            && header.Scope == expected.Scope && header.DoLowerCase == expected.DoLowerCase
            && header.StripAccents == expected.StripAccents && header.TokenizeChineseChars == expected.TokenizeChineseChars
            && header.Truncation == expected.Truncation
            && header.MaxLength == expected.MaxLength && header.Pooling == expected.Pooling
            && header.Layers.SequenceEqual(expected.Layers) && header.Dtype == expected.Dtype
            && header.HiddenSize == expected.HiddenSize && header.Examples == expected.Examples
            && header.PayloadOffset >= PrefixSize + headerLength + HashSize && header.PayloadBytes == header.Positions * rowBytes
            && header.BlockBytes > 0 && header.IndexOffset == header.PayloadOffset + header.PayloadBytes
            && header.IndexBytes == header.Examples * (long)IndexEntrySize + blocks * BlockHashSize
            && length == header.IndexOffset + header.IndexBytes;
        if (!sound)
            return null;

        var index = new byte[header.IndexBytes];
        if (!TryReadExactly(handle, header.IndexOffset, index) || Convert.ToHexStringLower(SHA256.HashData(index)) != header.IndexSha256)
            return null;
        var offsets = new long[header.Examples];
        var lengths = new int[header.Examples];
        long total = 0;
        for (var i = 0; i < header.Examples; i++)
        {
            offsets[i] = BinaryPrimitives.ReadInt64LittleEndian(index.AsSpan(i * IndexEntrySize));
            lengths[i] = BinaryPrimitives.ReadInt32LittleEndian(index.AsSpan(i * IndexEntrySize + 8));
            if (lengths[i] < 1 || (header.Pooling.IsSinglePosition() && lengths[i] != 1) || lengths[i] > header.MaxLength
                || offsets[i] < 0 || offsets[i] + lengths[i] > header.Positions)
                return null;
            total += lengths[i];
        }

        if (total != header.Positions)
            return null;
        if (verifyPayload && !PayloadMatches(handle, header, index.AsSpan(header.Examples * IndexEntrySize), cancellationToken))
            return null;
        return new ActivationCache(path, handle, header, offsets, lengths);
    }

    /// <summary>One sequential pass over the payload, checking every block's checksum.</summary>
    private static bool PayloadMatches(SafeFileHandle handle, ActivationCacheHeader header, ReadOnlySpan<byte> blockHashes, CancellationToken cancellationToken)
    {
        var block = new byte[header.BlockBytes];
        Span<byte> digest = stackalloc byte[HashSize];
        for (long b = 0, offset = 0; offset < header.PayloadBytes; b++, offset += header.BlockBytes)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var span = block.AsSpan(0, (int)Math.Min(header.BlockBytes, header.PayloadBytes - offset));
            if (!TryReadExactly(handle, header.PayloadOffset + offset, span))
                return false;
            SHA256.HashData(span, digest);
            if (!digest[..BlockHashSize].SequenceEqual(blockHashes.Slice((int)(b * BlockHashSize), BlockHashSize)))
                return false;
        }

        return true;
    }

    private static byte[] Prefix(ActivationCacheHeader header)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var prefix = new byte[PrefixSize + json.Length];
        Magic.CopyTo(prefix);
        BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteInt32LittleEndian(prefix.AsSpan(12), json.Length);
        json.CopyTo(prefix, PrefixSize);
        return prefix;
    }

    private void ReadExactly(long offset, Span<byte> span)
    {
        if (!TryReadExactly(handle, offset, span))
            throw new InvalidDataException($"The activation cache {Path} ended early.");
    }

    private static bool TryReadExactly(SafeFileHandle handle, long offset, Span<byte> span)
    {
        while (span.Length > 0)
        {
            var read = RandomAccess.Read(handle, span, offset);
            if (read <= 0)
                return false;
            span = span[read..];
            offset += read;
        }

        return true;
    }

    private static ScalarType DtypeOf(CacheDtype dtype) => dtype.ToScalarType();

    private static long Align(long value) => (value + Alignment - 1) / Alignment * Alignment;

    private static void AddField(IncrementalHash hash, string? value)
    {
        if (value is null)
        {
            hash.AppendData([0xFF, 0xFF, 0xFF, 0xFF]);
            return;
        }

        var bytes = Encoding.UTF8.GetBytes(value);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        hash.AppendData(length);
        hash.AppendData(bytes);
    }

    /// <summary>Writes the payload sequentially and records the truncated SHA-256 of every full or final block.</summary>
    private sealed class BlockHasher(Stream stream, byte[] hashes)
    {
        private readonly IncrementalHash hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private int inBlock;
        private int block;

        public void Write(ReadOnlySpan<byte> data)
        {
            stream.Write(data);
            while (data.Length > 0)
            {
                var take = Math.Min(BlockBytes - inBlock, data.Length);
                hash.AppendData(data[..take]);
                inBlock += take;
                data = data[take..];
                if (inBlock == BlockBytes)
                    Close();
            }
        }

        public void Finish()
        {
            if (inBlock > 0)
                Close();
            hash.Dispose();
        }

        private void Close()
        {
            var digest = hash.GetHashAndReset();
            digest.AsSpan(0, BlockHashSize).CopyTo(hashes.AsSpan(block * BlockHashSize));
            block++;
            inBlock = 0;
        }
    }
}
