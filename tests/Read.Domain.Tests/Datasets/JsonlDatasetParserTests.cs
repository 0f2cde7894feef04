using System.Text;
using Read.Domain.Datasets;
using Read.Domain.Files;

namespace Read.Domain.Tests.Datasets;

public sealed class JsonlDatasetParserTests
{
    private static DatasetParseResult Parse(string s) => JsonlDatasetParser.Parse(Encoding.UTF8.GetBytes(s));

    [Theory]
    [InlineData("\uFEFF{\"text\":\"a\",\"label\":\"x\"}\r\n\r\n{\"text\":\"b\",\"text_pair\":\"c\",\"label\":\"y\"}\n{\"text\":\"d\",\"label\":\"x\"}")]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"}\n{\"text\":\"c\",\"label\":1}\n")]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{bad\n")]
    [InlineData("\uFEFF")]
    public void Incremental_SplitAtEveryByte_GivesTheOneShotResult(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var whole = JsonlDatasetParser.Parse(bytes);
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            var reader = new JsonlDatasetParser.Incremental();
            if (reader.Append(bytes.AsSpan(0, cut)))
                reader.Append(bytes.AsSpan(cut));
            var split = reader.Complete();
            Assert.Equal((whole.ErrorCode, whole.ErrorLine, whole.ExampleCount, whole.HasTextPairs), (split.ErrorCode, split.ErrorLine, split.ExampleCount, split.HasTextPairs));
            Assert.Equal(whole.Labels, split.Labels);
            Assert.Equal(whole.Examples, split.Examples);
        }
    }

    [Fact]
    public void Parse_ValidFileWithBomCrlfBlankLinesAndPairs_ReturnsEveryExample()
    {
        var result = Parse("\uFEFF{\"text\":\"a\",\"label\":\"x\"}\r\n\r\n{\"text\":\"b\",\"text_pair\":\"c\",\"label\":\"1\"}\n{\"text\":\"d\",\"label\":\"true\"}");
        Assert.True(result.Succeeded, result.ErrorMessage);
        Assert.Equal(
            [new LabeledExample("a", null, "x"), new LabeledExample("b", "c", "1"), new LabeledExample("d", null, "true")],
            result.Examples);
        Assert.Equal(["1", "true", "x"], result.Labels);
    }

    [Theory]
    [InlineData("{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":2.5}\n", new[] { "1", "2.5" })]
    [InlineData("{\"text\":\"a\",\"label\":true}\n{\"text\":\"b\",\"label\":false}\n", new[] { "false", "true" })]
    public void Parse_NumberOrBooleanLabelsOfOneType_KeepTheirJsonText(string content, string[] labels)
    {
        var result = Parse(content);
        Assert.True(result.Succeeded, result.ErrorMessage);
        Assert.Equal(labels, result.Labels);
    }

    [Theory]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\",\"label\":\"y\"} trailing\n", "invalid_json", 2)]
    [InlineData("{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"\",\"label\":\"y\"}\n", "missing_text", 2)]
    [InlineData("{\"text\":\"a\",\"label\":null}\n", "missing_label", 1)]
    [InlineData("{\"text\":\"a\",\"label\":\"x\",\"text_pair\":5}\n", "invalid_text_pair", 1)]
    [InlineData("\n\n\n{\"text\":1,\"label\":\"x\"}\n", "missing_text", 4)]
    [InlineData("{\"text\":\"a\",\"label\":\"1\"}\n{\"text\":\"b\",\"label\":1}\n", "mixed_label_types", 2)]
    [InlineData("{\"text\":\"a\",\"label\":\"x\\u0000\"}\n", "invalid_characters", 1)]
    public void Parse_BadLine_NamesTheLine(string content, string code, int line)
    {
        var result = Parse(content);
        Assert.Equal(code, result.ErrorCode);
        Assert.Equal(line, result.ErrorLine);
        Assert.StartsWith($"Line {line}:", result.ErrorMessage);
    }

    [Fact]
    public void Write_ThenParse_RoundTrips()
    {
        var examples = new[] { new LabeledExample("it's \"quoted\"\nnewline", null, "a"), new LabeledExample("ü ✓", "pair", "b") };
        var result = JsonlDatasetParser.Parse(JsonlDatasetParser.Write(examples));
        Assert.Equal(examples, result.Examples);
    }
}
