using System.Text.Json;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;

namespace Read.Domain.Tests.Configuration;

public sealed class JsonEnumTests
{
    // The names the API and adapter_config.json used while these were strings: they must not change.
    [Fact]
    public void Names_AreTheApiNamesInUseBeforeTheEnums()
    {
        Assert.Equal(["gru", "rnn", "lstm"], JsonEnum<RecurrentCell>.Names);
        Assert.Equal(["mean", "last"], JsonEnum<LayerAggregation>.Names);
        Assert.Equal(["mean", "cls", "last"], JsonEnum<Pooling>.Names);
        Assert.Equal(["layernorm", "rmsnorm", "none"], JsonEnum<InputNorm>.Names);
        Assert.Equal(["zeros", "embedding"], JsonEnum<InitialState>.Names);
        Assert.Equal(["none", "balanced"], JsonEnum<ClassWeighting>.Names);
        Assert.Equal(["fp16", "bf16"], JsonEnum<CacheDtype>.Names);
        Assert.Equal(["bert", "llama"], JsonEnum<BackboneArchitecture>.Names);
        Assert.Equal(["float32", "bfloat16", "float16"], JsonEnum<BackboneDtype>.Names);
    }

    [Fact]
    public void Hyperparameters_ReadAndWriteTheNames()
    {
        const string json = """{"cell":"lstm","aggregation":"last","pooling":"cls","input_norm":"rmsnorm","initial_state":"embedding","class_weights":"balanced","cache_dtype":"bf16"}""";
        var hp = JsonSerializer.Deserialize<ReadHyperparameters>(json)!;
        Assert.Equal((RecurrentCell.Lstm, LayerAggregation.Last, Pooling.Cls, InputNorm.RmsNorm, InitialState.Embedding, ClassWeighting.Balanced, CacheDtype.Bf16),
            (hp.Cell, hp.Aggregation, hp.Pooling, hp.InputNorm, hp.InitialState, hp.ClassWeights, hp.CacheDtype));
        using var written = JsonDocument.Parse(JsonSerializer.Serialize(hp));
        Assert.Equal("rmsnorm", written.RootElement.GetProperty("input_norm").GetString());
        Assert.Equal("bf16", written.RootElement.GetProperty("cache_dtype").GetString());
    }

    [Theory]
    [InlineData("""{"cell":"GRU"}""")]   // names are case-sensitive, as they always were
    [InlineData("""{"cell":0}""")]       // no numbers
    [InlineData("""{"pooling":null}""")]
    public void Hyperparameters_OtherValues_FailWithTheValidNames(string json)
    {
        var error = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ReadHyperparameters>(json));
        Assert.StartsWith("The value must be one of ", error.Message, StringComparison.Ordinal);
    }

    // adapter_config.json as artifacts published before the enums wrote it (format 1, string fields).
    [Fact]
    public void AdapterConfig_FromAnOlderArtifact_Reads()
    {
        const string json = """
            {"backbone_id":"all-minilm-l6-v2","backbone_weights_hash":"ab","hidden_size":384,"cell":"gru","r":64,"aggregation":"mean",
             "layers":[1,2,3,4,5,6],"label_names":["neg","pos"],"max_length":128,"tokenizer":{"do_lower_case":true},
             "input_layer_norm":false,"head":"sequence_classification","pooling":"mean","method":"read","format_version":1}
            """;
        var config = JsonSerializer.Deserialize<AdapterConfig>(json)!;
        Assert.Equal((RecurrentCell.Gru, LayerAggregation.Mean, Pooling.Mean, InitialState.Zeros, CacheDtype.Fp16), (config.Cell, config.Aggregation, config.Pooling, config.InitialState, config.CacheDtype));
        Assert.Null(config.InputNorm);
        Assert.Equal(InputNorm.None, config.EffectiveInputNorm); // input_layer_norm false, from before input_norm existed
    }
}
