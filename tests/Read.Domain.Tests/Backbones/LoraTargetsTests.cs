using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;

namespace Read.Domain.Tests.Backbones;

/// <summary>Each architecture's LoRA target names point at linear layers that its model really has, in every layer.</summary>
public sealed class LoraTargetsTests
{
    [Fact]
    public void LlamaTargets_NameLinearModulesOfEveryLayer()
    {
        using var temp = new TempDirectory();
        TinyLlamaCheckpoint.Write(temp.Path, new TinyLlamaCheckpoint.Options { Layers = 2 }, seed: 1);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama", temp.Path);
        AssertTargetsAreLinears(backbone, BackboneArchitectures.LoraTargets(BackboneArchitecture.Llama), LlamaLoraTargets.LayerPath, 2);
        Assert.Equal(["q_proj", "v_proj"], LlamaLoraTargets.Targets.Default);
    }

    [Fact]
    public void BertTargets_NameLinearModulesOfEveryLayer()
    {
        using var temp = new TempDirectory();
        TinyBertCheckpoint.Write(temp.Path, BertConfig.Tiny(1), seed: 1, SyntheticSentiment.Words);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-bert", temp.Path);
        AssertTargetsAreLinears(backbone, BackboneArchitectures.LoraTargets(BackboneArchitecture.Bert), BertLoraTargets.LayerPath, backbone.Shape.NumHiddenLayers);
        Assert.Equal("attention.self.query", BertLoraTargets.Targets.PathOf("query"));
    }

    private static void AssertTargetsAreLinears(Backbone backbone, LoraTargets targets, Func<int, string> layerPath, int layers)
    {
        var linears = backbone.Model.named_modules().Where(m => m.module is TorchSharp.Modules.Linear).Select(m => m.name).ToHashSet();
        for (var l = 0; l < layers; l++)
            foreach (var name in targets.Names)
                Assert.Contains($"{layerPath(l)}.{targets.PathOf(name)}", linears);
        Assert.Throws<ArgumentException>(() => targets.PathOf("lm_head"));
    }
}
