using System.Collections.Concurrent;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Read.Domain.Tests.Backbones.Llama.Reference;

/// <summary>
/// llama.cpp (through LLamaSharp 0.30.0, CPU backend) as an independent reference for a Llama-family decoder:
/// per-token final hidden states (the output of the last RMSNorm, which llama.cpp returns as per-token embeddings
/// with pooling "none") and per-token logits for one causal sequence.
/// </summary>
/// <remarks>
/// Numerics: the GGUF written by <see cref="GgufWriter"/> holds F32 weights, and the KV cache is set to F32 here
/// (llama.cpp's default is F16, which alone costs about 1e-3 relative). Flash attention is disabled so the plain
/// soft-max path is used. llama.cpp's CPU matmuls still accumulate in a different order from TorchSharp's, so
/// expect agreement to roughly 1e-5..1e-4, not bit equality. A fixed thread count keeps runs repeatable.
/// </remarks>
internal sealed class LlamaCppReference : IDisposable
{
    private const int MaxTokens = 512;
    private static readonly ConcurrentQueue<string> NativeErrors = new();
    private static readonly object ConfigureLock = new();
    private static bool _configured;

    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly object _gate = new();

    public LlamaCppReference(string ggufPath)
    {
        ConfigureNativeLogging();
        var parameters = new ModelParams(ggufPath)
        {
            GpuLayerCount = 0,
            ContextSize = MaxTokens,
            BatchSize = MaxTokens,
            UBatchSize = MaxTokens, // one micro-batch: the whole sequence goes through the graph at once
            SeqMax = 1,
            Threads = 2,
            BatchThreads = 2,
            Embeddings = true,
            PoolingType = LLamaPoolingType.None, // one vector per token: the final-norm output
            TypeK = GGMLType.GGML_TYPE_F32,
            TypeV = GGMLType.GGML_TYPE_F32,
            FlashAttention = false,
        };
        try
        {
            _weights = LLamaWeights.LoadFromFile(parameters);
            _context = _weights.CreateContext(parameters);
        }
        catch (Exception e)
        {
            _weights?.Dispose();
            throw new InvalidOperationException($"llama.cpp refused {ggufPath}: {e.Message}\nllama.cpp errors:\n{DrainErrors()}", e);
        }

        EmbeddingSize = _weights.EmbeddingSize;
        VocabSize = _weights.Vocab.Count;
    }

    public int EmbeddingSize { get; }

    public int VocabSize { get; }

    /// <summary>Per token, the final RMSNorm output for one causal sequence of <paramref name="tokenIds"/> from position 0.</summary>
    public float[][] FinalHiddenStates(IReadOnlyList<int> tokenIds) => Evaluate(tokenIds, embeddings: true);

    /// <summary>Per token, the logits (lm_head, or the tied embedding) for one causal sequence from position 0.</summary>
    public float[][] Logits(IReadOnlyList<int> tokenIds) => Evaluate(tokenIds, embeddings: false);

    private float[][] Evaluate(IReadOnlyList<int> tokenIds, bool embeddings)
    {
        if (tokenIds.Count == 0 || tokenIds.Count > MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(tokenIds), tokenIds.Count, $"Between 1 and {MaxTokens} tokens.");
        lock (_gate)
        {
            var handle = _context.NativeHandle;
            // A fresh sequence each call: drop everything the previous call left in the KV cache.
            handle.MemoryClear(true);
            var batch = new LLamaBatch();
            for (var i = 0; i < tokenIds.Count; i++)
                batch.Add((LLamaToken)tokenIds[i], i, LLamaSeqId.Zero, true);
            var result = handle.Decode(batch);
            if (result != DecodeResult.Ok)
                throw new InvalidOperationException($"llama_decode returned {result}.\nllama.cpp errors:\n{DrainErrors()}");
            var output = new float[tokenIds.Count][];
            for (var i = 0; i < tokenIds.Count; i++)
                output[i] = embeddings ? handle.GetEmbeddingsIth(i).ToArray() : handle.GetLogitsIth(i).ToArray();
            handle.MemoryClear(true);
            return output;
        }
    }

    private static string DrainErrors()
    {
        var lines = new List<string>();
        while (NativeErrors.TryDequeue(out var line))
            lines.Add(line);
        return string.Join("", lines);
    }

    private static void ConfigureNativeLogging()
    {
        lock (ConfigureLock)
        {
            if (_configured)
                return;
            _configured = true;
            // Keep llama.cpp's chatter out of the test output but remember warnings and errors for exception messages.
            NativeLibraryConfig.All.WithLogCallback((level, message) =>
            {
                if (level is LLamaLogLevel.Error or LLamaLogLevel.Warning)
                {
                    NativeErrors.Enqueue(message);
                    while (NativeErrors.Count > 200)
                        NativeErrors.TryDequeue(out _);
                }
            });
        }
    }

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
