using System.IO.Compression;
using System.Text.Json.Nodes;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests;

[Collection(TinyBackboneCollection.Name)]
public sealed class AdapterArtifactTests(TinyBackboneFixture fixture)
{
    private static readonly string[] Texts = ["the movie was good", "a film was awful", "this phone was great and so", "the food was bad"];

    private AdapterConfig Config(IReadOnlyList<string> labels) => new(
        "tiny-test", fixture.Backbone.WeightsHash, 64, RecurrentCell.Gru, 8, LayerAggregation.Mean, [1, 2, 3, 4], labels, 32, new AdapterTokenizerConfig(true));

    /// <summary>A classifier with non-trivial weights everywhere (the joiner included), so a round trip is a real check.</summary>
    private static ReadClassifier RandomClassifier(int labels)
    {
        manual_seed(21);
        var classifier = new ReadClassifier(new ReadSideNetwork(64, 8, zeroInitOutput: false), 64, labels);
        using (no_grad())
        {
            foreach (var p in classifier.parameters())
                p.add_(randn_like(p) * 0.3);
        }

        return classifier;
    }

    [Fact]
    public void LoadOfWrite_RandomClassifier_PredictsLikeTheOriginal()
    {
        using var classifier = RandomClassifier(3);
        string[] labels = ["a", "b", "c"];
        var artifact = AdapterArtifact.Write(Config(labels), classifier, new { note = "test" });
        using var loaded = AdapterArtifact.Load(artifact, fixture.Backbone);
        var predicted = AdapterPredictor.Predict(fixture.Backbone, loaded, Texts, null);

        // Expected: the original module on hidden states computed here.
        using var batch = fixture.Backbone.Encode(Texts, null, 32);
        var hidden = fixture.Backbone.HiddenStates(batch);
        using var states = stack(hidden.Skip(1).Select(h => h.select(1, 0)).ToArray(), 1);
        float[] expected;
        using (no_grad())
            expected = classifier.call(states).softmax(-1).data<float>().ToArray();
        for (var n = 0; n < Texts.Length; n++)
        {
            for (var k = 0; k < 3; k++)
                Assert.Equal(expected[n * 3 + k], predicted[n].Probabilities[labels[k]], 1e-6);
            Assert.Equal(labels[Enumerable.Range(0, 3).MaxBy(k => expected[n * 3 + k])], predicted[n].Label);
        }

        foreach (var h in hidden)
            h.Dispose();
    }

    [Fact]
    public void Predict_AdapterFromBeforeAccentStripping_KeepsTheIdsItWasTrainedOn()
    {
        // An artifact written before strip_accents was recorded says only do_lower_case: it was trained on "góód" as
        // it stands, and must go on seeing it so; a current artifact sees "good".
        using var classifier = RandomClassifier(2);
        var legacyArtifact = AdapterArtifact.Write(Config(["neg", "pos"]), classifier, new { });
        var legacyJson = JsonNode.Parse(new ZipArchive(new MemoryStream(legacyArtifact)).GetEntry("adapter_config.json")!.Open())!;
        Assert.Null(legacyJson["tokenizer"]!["strip_accents"]);
        var current = Config(["neg", "pos"]) with { Tokenizer = AdapterTokenizerConfig.From(fixture.Backbone.TokenizerSettings) };
        var currentArtifact = AdapterArtifact.Write(current, classifier, new { });
        using var legacy = AdapterArtifact.Load(legacyArtifact, fixture.Backbone);
        using var fresh = AdapterArtifact.Load(currentArtifact, fixture.Backbone);
        string[] accented = ["the móvie was góód"];
        string[] plain = ["the movie was good"];

        Assert.Equal(TokenizerSettings.Legacy(lowerCase: true), legacy.Config.Tokenizer.Settings);
        Assert.True(AdapterArtifact.ReadConfig(currentArtifact).Tokenizer.StripAccents);
        Assert.Equal(Probabilities(fresh, plain), Probabilities(fresh, accented));
        Assert.NotEqual(Probabilities(legacy, plain), Probabilities(legacy, accented));
        Assert.Equal(Probabilities(fresh, plain), Probabilities(legacy, plain));
    }

    private double[] Probabilities(LoadedAdapter adapter, string[] texts) =>
        AdapterPredictor.Predict(fixture.Backbone, adapter, texts, null).SelectMany(p => p.Probabilities.OrderBy(kv => kv.Key).Select(kv => kv.Value)).ToArray();

    [Fact]
    public void Write_Artifact_HasSortedSnakeCaseConfigAndOnlyAdapterTensors()
    {
        using var classifier = RandomClassifier(2);
        var artifact = AdapterArtifact.Write(Config(["neg", "pos"]), classifier, new { ValidationAccuracy = 0.5 });
        using var zip = new ZipArchive(new MemoryStream(artifact));
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "metrics.json"], zip.Entries.Select(e => e.FullName).Order());

        var json = JsonNode.Parse(zip.GetEntry("adapter_config.json")!.Open())!.AsObject();
        var keys = json.Select(p => p.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
        Assert.Equal(1, json["format_version"]!.GetValue<int>());
        Assert.Equal("read", json["method"]!.GetValue<string>());
        Assert.Equal(fixture.Backbone.WeightsHash, json["backbone_weights_hash"]!.GetValue<string>());
        Assert.True(json["tokenizer"]!["do_lower_case"]!.GetValue<bool>());
        Assert.Equal(0.5, JsonNode.Parse(zip.GetEntry("metrics.json")!.Open())!["validation_accuracy"]!.GetValue<double>());

        using var weights = new MemoryStream();
        zip.GetEntry("adapter_model.safetensors")!.Open().CopyTo(weights);
        var names = TestSafeTensors.Read(weights.ToArray()).Keys.ToList();
        Assert.All(names, n => Assert.True(n.StartsWith("side.", StringComparison.Ordinal) || n.StartsWith("head.", StringComparison.Ordinal), n));
        Assert.Contains("side.cell.weight_ih_l0", names);
        Assert.Contains("head.weight", names);

        var config = AdapterArtifact.ReadConfig(artifact);
        Assert.Equal(["neg", "pos"], config.LabelNames);
        Assert.Equal([1, 2, 3, 4], config.Layers);
    }

    [Fact]
    public void PredictViaCache_TrainedAdapter_MatchesBackbonePredictions()
    {
        var train = SyntheticSentiment.Generate(40, seed: 6);
        var result = new ReadFineTuner().Run(fixture.Backbone, train, null, ReadFineTunerTests.Learnable with { Epochs = 5 },
            fixture.NewCacheDirectory(), new RecordingProgress(fixture.Backbone), CancellationToken.None);
        using var adapter = AdapterArtifact.Load(result.Artifact, fixture.Backbone);
        var examples = SyntheticSentiment.Generate(24, seed: 7).Concat([new LabeledExample("Great GREAT!", "fun", "positive")]).ToList();

        var viaCache = ReadFineTuner.PredictViaCache(fixture.Backbone, adapter, examples, fixture.NewCacheDirectory());
        var viaBackbone = AdapterPredictor.Predict(fixture.Backbone, adapter, examples.Select(e => e.Text).ToList(), examples.Select(e => e.TextPair).ToList());

        Assert.Equal(examples.Count, viaCache.Count);
        var maxDifference = 0.0;
        for (var i = 0; i < examples.Count; i++)
        {
            Assert.Equal(viaBackbone[i].Label, viaCache[i].Label);
            foreach (var (label, p) in viaBackbone[i].Probabilities)
                maxDifference = Math.Max(maxDifference, Math.Abs(p - viaCache[i].Probabilities[label]));
        }

        // The cache stores fp16 states; the backbone path uses fp32.
        Assert.True(maxDifference < 1e-3, $"max probability difference {maxDifference}");
        Assert.Equal(result.Labels, adapter.Config.LabelNames);
    }

    [Fact]
    public void Load_OnBackboneWithOtherWeights_Throws()
    {
        using var classifier = RandomClassifier(2);
        var artifact = AdapterArtifact.Write(Config(["neg", "pos"]), classifier, new { });
        using var temp = new TempDirectory();
        TinyBertCheckpoint.Write(temp.Path, BertConfig.Tiny(1), seed: 2, SyntheticSentiment.Words);
        using var other = HuggingFaceCheckpoint.Load("other", temp.Path);

        var error = Assert.Throws<InvalidDataException>(() => AdapterArtifact.Load(artifact, other));
        Assert.Contains(fixture.Backbone.WeightsHash, error.Message);
    }

    [Fact]
    public void Load_ArtifactMissingATensor_ThrowsNamingIt()
    {
        using var classifier = RandomClassifier(2);
        var artifact = AdapterArtifact.Write(Config(["neg", "pos"]), classifier, new { });
        using var input = new ZipArchive(new MemoryStream(artifact));
        using var weights = new MemoryStream();
        input.GetEntry("adapter_model.safetensors")!.Open().CopyTo(weights);
        var tensors = TestSafeTensors.Read(weights.ToArray());
        tensors.Remove("side.cell.weight_hh_l0");
        using var temp = new TempDirectory();
        var path = temp.Sub("w.safetensors");
        TestSafeTensors.Write(path, tensors);

        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var entry in input.Entries)
            {
                using var target = zip.CreateEntry(entry.FullName).Open();
                if (entry.FullName == "adapter_model.safetensors")
                    target.Write(File.ReadAllBytes(path));
                else
                    entry.Open().CopyTo(target);
            }
        }

        var error = Assert.Throws<InvalidDataException>(() => AdapterArtifact.Load(output.ToArray(), fixture.Backbone));
        Assert.Contains("side.cell.weight_hh_l0", error.Message);
    }
}
