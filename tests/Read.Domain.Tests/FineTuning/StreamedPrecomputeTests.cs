using Read.Domain.SideNetwork;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using static TorchSharp.torch;

namespace Read.Domain.Tests.FineTuning;

/// <summary>
/// Layer-streamed precompute (one backbone layer resident at a time) against the ordinary whole-forward precompute:
/// the same cache file (same content address, same header, same index) with states equal within fp16 rounding.
/// </summary>
public sealed class StreamedPrecomputeTests
{
    // More than PrecomputeMaxExamples (64), so the dataset runs in several length-sorted batches of different widths:
    // each batch's padding mask, causal mask and rotary positions must match the ordinary forward's.
    private const int Examples = 150;

    [Theory]
    [InlineData(Pooling.Cls, new[] { 0, 2, 4 })]
    [InlineData(Pooling.Mean, new[] { 1, 2, 3, 4 })]
    [InlineData(Pooling.Mean, new[] { 0, 2 })] // layers 3 and 4 need not run at all
    public void Streamed_Bert_WritesTheOrdinaryCache(Pooling pooling, int[] layers)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("bert");
        TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 5, SyntheticSentiment.Words);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-bert", directory);

        AssertSameCache(backbone, temp, pooling, layers, CacheDtype.Fp16);
    }

    [Theory]
    [InlineData(Pooling.Last, 3, "F32", "float32", "float32")]
    [InlineData(Pooling.Mean, 3, "BF16", "float32", "float32")]
    [InlineData(Pooling.Mean, 1, "BF16", "bfloat16", "bfloat16")] // states between layers stay in the compute dtype, as in the whole forward
    [InlineData(Pooling.Mean, 1, "F32", "bfloat16", "float32")] // the streamed layer is held in fp32, rounded as bf16 storage would be
    public void Streamed_Llama_WritesTheOrdinaryCache(Pooling pooling, int shards, string checkpoint, string storage, string compute)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Layers = 3, Shards = shards, StorageDtype = checkpoint }, seed: 7);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama", directory, BackboneDtypes.Parse(storage), compute: BackboneDtypes.Parse(compute));

        AssertSameCache(backbone, temp, pooling, [0, 1, 2, 3], CacheDtype.Bf16);
    }

    [Theory]
    [InlineData("llama", Pooling.Last)]
    [InlineData("bert", Pooling.Mean)] // every real position cached: the packed layout
    public void Run_FromStreamedOrResidentCache_GivesTheSameMetrics(string architecture, Pooling pooling)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub(architecture);
        if (architecture == "bert")
            TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 5, SyntheticSentiment.Words);
        else
            TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 11);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-" + architecture, directory);
        var train = SyntheticSentiment.Generate(80, seed: 1);
        var validation = SyntheticSentiment.Generate(40, seed: 2);
        var hp = new ReadHyperparameters { Epochs = 5, BatchSize = 16, LearningRate = 3e-2, SideHiddenSize = 16, MaxLength = 32, Pooling = pooling, Seed = 3 };
        var steps = new List<StreamedPrecomputeStep>();

        var resident = new ReadFineTuner().Run(backbone, train, validation, hp with { Precompute = PrecomputeMode.Resident }, temp.Sub("a"),
            new RecordingProgress(backbone), CancellationToken.None);
        var calls = backbone.ForwardCalls;
        var streamed = new ReadFineTuner { StreamedStepCompleted = steps.Add }.Run(backbone, train, validation, hp with { Precompute = PrecomputeMode.Streamed },
            temp.Sub("b"), new RecordingProgress(backbone), CancellationToken.None);

        Assert.Equal(calls, backbone.ForwardCalls); // the streamed run never used the resident model
        Assert.Equal(Enumerable.Range(0, backbone.Shape.NumHiddenLayers + 1), steps.Select(s => s.Step)); // embeddings, then every layer
        Assert.All(steps, s => Assert.True(s.WeightBytesRead > 0));
        Assert.Equal(resident.Metrics.CacheBytes, streamed.Metrics.CacheBytes);
        Assert.Equal(resident.Metrics.ValidationAccuracy, streamed.Metrics.ValidationAccuracy);
        Assert.Equal(resident.Metrics.ValidationLoss!.Value, streamed.Metrics.ValidationLoss!.Value, 1e-5);
        Assert.Equal(resident.Metrics.FinalTrainLoss, streamed.Metrics.FinalTrainLoss, 1e-5);
    }

    private static void AssertSameCache(Backbone backbone, TempDirectory temp, Pooling pooling, int[] layers, CacheDtype dtype)
    {
        var examples = SyntheticSentiment.Generate(Examples, seed: 3).Select((e, i) => i % 3 == 0 ? e with { Text = e.Text + " and the story was so good" } : e).ToList();
        var spec = new ActivationCacheSpec(32, pooling, layers, dtype, backbone.TokenizerSettings);
        var (ordinary, ordinaryHit) = ActivationCache.GetOrCreate(backbone, examples, spec, temp.Sub("resident"), null, CancellationToken.None,
            new PrecomputeRequest(PrecomputeMode.Resident));
        var calls = backbone.ForwardCalls;
        var steps = new List<StreamedPrecomputeStep>();
        var (streamed, streamedHit) = ActivationCache.GetOrCreate(backbone, examples, spec, temp.Sub("streamed"), null, CancellationToken.None,
            new PrecomputeRequest(PrecomputeMode.Streamed, steps.Add));
        using (ordinary)
        using (streamed)
        {
            Assert.False(ordinaryHit);
            Assert.False(streamedHit);
            Assert.Equal(calls, backbone.ForwardCalls); // streamed never ran the whole forward
            Assert.Equal(Enumerable.Range(0, layers.Max() + 1), steps.Select(s => s.Step));
            // Same content address (file name) and the same header: the streamed file is a hit for the ordinary path.
            Assert.Equal(Path.GetFileName(ordinary.Path), Path.GetFileName(streamed.Path));
            Assert.Equal(ordinary.Header, streamed.Header with { Layers = ordinary.Header.Layers });
            Assert.Equal(ordinary.Header.Layers, streamed.Header.Layers);
            Assert.Equal(ordinary.FileBytes, streamed.FileBytes);
            var all = Enumerable.Range(0, examples.Count).Select(i => (long)i).ToArray();
            for (var i = 0; i < examples.Count; i++)
                Assert.Equal(ordinary.PositionsOf(i), streamed.PositionsOf(i));
            using var a = ordinary.Read(all);
            using var b = streamed.Read(all);
            AssertWithinHalfPrecisionRounding(a.States, b.States, dtype);
            Assert.Equal(a.Segments.data<long>().ToArray(), b.Segments.data<long>().ToArray());
        }

        Assert.Empty(Directory.GetDirectories(temp.Sub("streamed"))); // the scratch files are gone
        // And the ordinary path reuses the streamed file as its own.
        var (reused, hit) = ActivationCache.GetOrCreate(backbone, examples, spec, temp.Sub("streamed"), null, CancellationToken.None);
        reused.Dispose();
        Assert.True(hit);
    }

    /// <summary>
    /// Tolerance: one unit in the last place of the cache dtype (2^-10 relative for fp16, 2^-7 for bf16; absolute below
    /// fp16's normal range), what two float32 values a rounding apart can become when stored.
    /// </summary>
    private static void AssertWithinHalfPrecisionRounding(Tensor expected, Tensor actual, CacheDtype dtype)
    {
        Assert.Equal(expected.shape, actual.shape);
        var ulp = dtype == CacheDtype.Fp16 ? Math.Pow(2, -10) : Math.Pow(2, -7);
        using var bound = expected.abs().clamp_min(Math.Pow(2, -14)) * ulp;
        using var difference = (expected - actual).abs();
        using var excess = (difference - bound).max();
        Assert.True(excess.item<float>() <= 0, $"largest difference over one {dtype} ulp: {excess.item<float>()}");
    }
}
