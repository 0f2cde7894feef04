using System.Diagnostics;
using Read.Domain.Backbones;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// The activation cache's states computed with one backbone layer resident at a time
/// (docs/decisions/011-layer-streamed-precompute.md): step s (embeddings, then each layer) is loaded from the checkpoint,
/// run over every batch — its input read from, its output written to a scratch file in the compute dtype, so the next
/// step sees exactly what the ordinary forward would pass on — and freed. The layers the cache keeps are gathered per
/// step into one scratch file each, in the cache dtype; at the end they are interleaved batch by batch into what
/// <see cref="ActivationCache"/> writes. Peak memory: one step's weights plus one batch's states.
/// </summary>
internal static class StreamedPrecompute
{
    private const int BufferBytes = 1 << 20;

    /// <summary>
    /// Per batch of <paramref name="batches"/>, in order: the (P_b, C, d) states in the cache dtype, as the ordinary
    /// precompute gathers them. Scratch files live in <paramref name="scratchDirectory"/> and are deleted when the
    /// enumeration ends.
    /// </summary>
    public static IEnumerable<Tensor> States(
        Backbone backbone, IReadOnlyList<EncodedBatch> batches, ActivationCacheSpec spec, ScalarType cacheDtype, string scratchDirectory,
        Action<double>? progress, Action<StreamedPrecomputeStep>? stepCompleted, CancellationToken cancellationToken)
    {
        var channels = spec.Layers;
        var scratch = Path.Combine(scratchDirectory, "streamed-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(scratch);
        try
        {
            var positions = RunSteps(backbone, batches, spec, cacheDtype, scratch, progress, stepCompleted, cancellationToken);
            var hidden = backbone.Shape.HiddenSize;
            var readers = channels.Select((_, c) => Open(ChannelFile(scratch, c))).ToArray();
            try
            {
                for (var b = 0; b < batches.Count; b++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    yield return Interleave(readers, positions[b], hidden, cacheDtype);
                }
            }
            finally
            {
                foreach (var reader in readers)
                    reader.Dispose();
            }
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    /// <summary>Runs every step the cache needs; returns the positions each batch stores.</summary>
    private static long[] RunSteps(
        Backbone backbone, IReadOnlyList<EncodedBatch> batches, ActivationCacheSpec spec, ScalarType cacheDtype, string scratch,
        Action<double>? progress, Action<StreamedPrecomputeStep>? stepCompleted, CancellationToken cancellationToken)
    {
        var channels = spec.Layers;
        // Layers above the deepest cached one change nothing in the cache: they are never read.
        var lastStep = channels.Max();
        var hidden = backbone.Shape.HiddenSize;
        var positions = new long[batches.Count];
        var tokens = batches.Sum(b => b.InputIds.numel());
        using var stream = backbone.OpenLayerStream();
        var device = backbone.Device.Torch; // the steps run there; scratch files and the cache are read and written on the CPU
        var channelWriters = channels.Select((_, c) => Create(ChannelFile(scratch, c))).ToArray();
        try
        {
            string? input = null;
            for (var step = 0; step <= lastStep; step++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var clock = Stopwatch.StartNew();
                var bytesRead = stream.Load(step);
                var loadSeconds = clock.Elapsed.TotalSeconds;
                clock.Restart();
                var output = step < lastStep ? Path.Combine(scratch, $"step-{step}.states") : null;
                var cached = Enumerable.Range(0, channels.Count).Where(c => channels[c] == step).ToArray();
                using (var reader = input is null ? null : Open(input))
                using (var writer = output is null ? null : Create(output))
                {
                    for (var b = 0; b < batches.Count; b++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        using var scope = NewDisposeScope();
                        var batch = batches[b];
                        var previous = reader is null ? null : ReadTensor(reader, [batch.InputIds.shape[0], batch.InputIds.shape[1], hidden], stream.ComputeDtype).to(device);
                        var state = stream.Run(step, previous, batch).contiguous(); // (B, S, d), on the backbone's device
                        writer?.Write(state.cpu().bytes);
                        if (cached.Length == 0)
                            continue;
                        // The ordinary forward hands float32 to the gather (decoders widen their dtype there); so does this.
                        var (gathered, _) = HiddenStateGather.Gather([state.dtype == ScalarType.Float32 ? state : state.to_type(ScalarType.Float32)], batch.AttentionMask, [0], spec.Pooling); // (P_b, 1, d)
                        ActivationCache.CheckStorable(gathered, spec.Dtype);
                        positions[b] = gathered.shape[0];
                        var stored = gathered.to_type(cacheDtype).cpu().contiguous();
                        foreach (var c in cached)
                            channelWriters[c].Write(stored.bytes);
                    }
                }

                if (input is not null)
                    File.Delete(input);
                input = output;
                stepCompleted?.Invoke(new StreamedPrecomputeStep(step, bytesRead, loadSeconds, clock.Elapsed.TotalSeconds, tokens));
                progress?.Invoke((double)(step + 1) / (lastStep + 1));
            }
        }
        finally
        {
            foreach (var writer in channelWriters)
                writer.Dispose();
        }

        return positions;
    }

    /// <summary>(P_b, C, d) from each channel's next (P_b, d) block.</summary>
    private static Tensor Interleave(FileStream[] readers, long positions, int hidden, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var parts = readers.Select(r => ReadTensor(r, [positions, hidden], dtype)).ToArray();
        return stack(parts, 1).contiguous().MoveToOuterDisposeScope();
    }

    private static Tensor ReadTensor(FileStream reader, long[] shape, ScalarType dtype)
    {
        var result = empty(shape, dtype, device: CPU);
        var bytes = new byte[result.numel() * result.element_size()];
        reader.ReadExactly(bytes);
        result.bytes = bytes;
        return result;
    }

    private static string ChannelFile(string scratch, int channel) => Path.Combine(scratch, $"channel-{channel}.states");

    private static FileStream Create(string path) =>
        new(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferBytes);

    private static FileStream Open(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.None, BufferBytes, FileOptions.SequentialScan);
}
