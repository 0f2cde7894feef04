using Read.Domain.SideNetwork;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.Backbones.Llama;

/// <summary>READ on a decoder: precompute → train → evaluate → adapter, exactly as on BERT, with last-token pooling.</summary>
public sealed class LlamaFineTuningTests
{
    private static readonly ReadHyperparameters Learnable = new()
    {
        Epochs = 40, BatchSize = 16, LearningRate = 3e-2, WeightDecay = 0, SideHiddenSize = 32, MaxLength = 32, Seed = 3,
    };

    [Theory]
    [InlineData(Pooling.Last)]
    [InlineData(Pooling.Mean)]
    public void Run_TinyLlama_LearnsWithoutTheBackboneAndPredictsWhatEvaluationScored(Pooling pooling)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny-llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 11);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama", directory);
        var train = SyntheticSentiment.Generate(80, seed: 1);
        var validation = SyntheticSentiment.Generate(40, seed: 2);
        var hp = Learnable with { Pooling = pooling };
        var progress = new RecordingProgress(backbone);

        var result = new ReadFineTuner().Run(backbone, train, validation, hp, temp.Sub("cache"), progress, CancellationToken.None);

        Assert.True(result.Metrics.ValidationAccuracy >= 0.8, $"validation accuracy {result.Metrics.ValidationAccuracy}");
        Assert.True(progress.ForwardCallsAt(FineTuneStage.Train) > 0);
        Assert.Equal(progress.ForwardCallsAt(FineTuneStage.Train), backbone.ForwardCalls); // training and evaluation read the cache only

        using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
        Assert.Equal(BackboneArchitecture.Llama, adapter.Config.Architecture);
        Assert.Equal("llama", adapter.Config.ModelType);
        Assert.Equal(pooling, adapter.Config.Pooling);
        Assert.Equal("tokenizer.json", adapter.Config.Tokenizer.Type);
        Assert.Equal(backbone.TokenizerSettings.Fingerprint, adapter.Config.Tokenizer.Fingerprint);

        // The live path (tokenize, backbone, side network) gives what the cached evaluation scored.
        var predictions = AdapterPredictor.Predict(backbone, adapter, validation.Select(e => e.Text).ToList(), null);
        var viaCache = ReadFineTuner.PredictViaCache(backbone, adapter, validation, temp.Sub("eval-cache"));
        for (var i = 0; i < validation.Count; i++)
        {
            Assert.Equal(viaCache[i].Label, predictions[i].Label);
            foreach (var (label, p) in viaCache[i].Probabilities)
                Assert.InRange(predictions[i].Probabilities[label], p - 2e-3, p + 2e-3);
        }
    }

    [Fact]
    public void Run_ClsPoolingOnADecoder_IsRefusedNamingTheChoices()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny-llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Layers = 1 }, seed: 1);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama", directory);
        var error = Assert.Throws<ArgumentException>(() => new ReadFineTuner().Run(backbone, SyntheticSentiment.Generate(8, seed: 1), null,
            Learnable with { Pooling = Pooling.Cls, Epochs = 1 }, temp.Sub("cache"), new RecordingProgress(backbone), CancellationToken.None));
        Assert.Contains("pooling must be one of mean, last on this backbone", error.Message);
    }

    [Fact]
    public void Load_BertAdapterOnALlamaBackbone_IsRefused()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny-llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Layers = 1 }, seed: 1);
        using var llama = HuggingFaceCheckpoint.Load("tiny-llama", directory);
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = temp.Sub("data"), ImportBundledBackbones = false });
        var bert = registry.Get(BackboneRegistry.TinyBackboneId);
        var result = new ReadFineTuner().Run(bert, SyntheticSentiment.Generate(16, seed: 1), null, Learnable with { Epochs = 1, ValidationSplit = 0.25 },
            temp.Sub("cache"), new RecordingProgress(bert), CancellationToken.None);
        var error = Assert.Throws<InvalidDataException>(() => AdapterArtifact.Load(result.Artifact, llama));
        Assert.Contains("was trained on backbone 'tiny-bert'", error.Message);
    }
}
