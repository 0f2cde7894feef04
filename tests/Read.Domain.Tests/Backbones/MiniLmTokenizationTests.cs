using TorchSharp;

namespace Read.Domain.Tests.Backbones;

/// <summary>Tokenization with the real BERT uncased vocabulary of all-MiniLM-L6-v2.</summary>
[Collection(MiniLmCollection.Name)]
public sealed class MiniLmTokenizationTests(MiniLmFixture fixture)
{
    private static long[][] Rows(torch.Tensor t)
    {
        var values = t.data<long>().ToArray();
        var width = (int)t.shape[1];
        return Enumerable.Range(0, (int)t.shape[0]).Select(r => values.Skip(r * width).Take(width).ToArray()).ToArray();
    }

    [Fact]
    public void Encode_ExampleSentence_GivesTheBertUncasedIds()
    {
        using var batch = fixture.Backbone.Encode(["This is an example sentence"], null, 128);
        Assert.Equal(new long[] { 101, 2023, 2003, 2019, 2742, 6251, 102 }, Rows(batch.InputIds)[0]);
    }

    [Fact]
    public void Encode_BatchOfDifferentLengths_PadsWithZeroAndMasks()
    {
        using var batch = fixture.Backbone.Encode(["This is an example sentence", "Hello", ""], null, 128);

        var ids = Rows(batch.InputIds);
        Assert.Equal(new long[] { 101, 7592, 102, 0, 0, 0, 0 }, ids[1]);
        Assert.Equal(new long[] { 101, 102, 0, 0, 0, 0, 0 }, ids[2]);
        Assert.Equal(new long[] { 1, 1, 1, 0, 0, 0, 0 }, Rows(batch.AttentionMask)[1]);
        Assert.Equal(new long[] { 1, 1, 0, 0, 0, 0, 0 }, Rows(batch.AttentionMask)[2]);
    }

    [Fact]
    public void Encode_LongerThanMaxLength_TruncatesAndKeepsSep()
    {
        using var batch = fixture.Backbone.Encode(["This is an example sentence", "Hello"], null, 5);
        Assert.Equal(new long[] { 101, 2023, 2003, 2019, 102 }, Rows(batch.InputIds)[0]);
        Assert.Equal(5, batch.InputIds.shape[1]);
    }

    [Fact]
    public void Encode_TextPair_SetsTokenTypesForTheSecondSegment()
    {
        using var batch = fixture.Backbone.Encode(["This is an example"], ["sentence"], 128);
        Assert.Equal(new long[] { 101, 2023, 2003, 2019, 2742, 102, 6251, 102 }, Rows(batch.InputIds)[0]);
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 0, 1, 1 }, Rows(batch.TokenTypeIds)[0]);
    }

    [Fact]
    public void Encode_ManyTextsSomeEmptyOrUnusual_YieldsOneRowEach()
    {
        string[] texts = ["", "   ", "ünïcödé façade", "🙂", string.Join(" ", Enumerable.Repeat("word", 500)), "x"];
        using var batch = fixture.Backbone.Encode(texts, null, 64);
        Assert.Equal(texts.Length, batch.InputIds.shape[0]);
        Assert.Equal(64, batch.InputIds.shape[1]);
        Assert.All(Rows(batch.InputIds), r => Assert.Equal(101, r[0]));
    }
}
