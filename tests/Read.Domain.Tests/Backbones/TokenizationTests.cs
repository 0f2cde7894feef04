using Read.Domain.Backbones;
using TorchSharp;

namespace Read.Domain.Tests.Backbones;

[Collection(TinyBackboneCollection.Name)]
public sealed class TokenizationTests(TinyBackboneFixture fixture)
{
    private readonly IReadOnlyList<string> vocabulary = File.ReadAllLines(Path.Combine(fixture.CheckpointDirectory, "vocab.txt"));

    private long Id(string token) => vocabulary.ToList().IndexOf(token) is var i and >= 0 ? i : throw new KeyNotFoundException(token);

    private static long[][] Rows(TorchSharp.torch.Tensor t)
    {
        var values = t.data<long>().ToArray();
        var width = (int)t.shape[1];
        return Enumerable.Range(0, (int)t.shape[0]).Select(r => values.Skip(r * width).Take(width).ToArray()).ToArray();
    }

    [Fact]
    public void Encode_PairAndSingle_PadsAndSetsMaskAndTokenTypes()
    {
        using var batch = fixture.Backbone.Encode(["Good movie", "bad"], ["great film", null], 32);

        long cls = Id("[CLS]"), sep = Id("[SEP]"), pad = Id("[PAD]");
        Assert.Equal(new long[] { cls, Id("good"), Id("movie"), sep, Id("great"), Id("film"), sep }, Rows(batch.InputIds)[0]);
        Assert.Equal(new long[] { cls, Id("bad"), sep, pad, pad, pad, pad }, Rows(batch.InputIds)[1]);
        Assert.Equal(new long[] { 1, 1, 1, 1, 1, 1, 1 }, Rows(batch.AttentionMask)[0]);
        Assert.Equal(new long[] { 1, 1, 1, 0, 0, 0, 0 }, Rows(batch.AttentionMask)[1]);
        Assert.Equal(new long[] { 0, 0, 0, 0, 1, 1, 1 }, Rows(batch.TokenTypeIds)[0]);
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 0, 0 }, Rows(batch.TokenTypeIds)[1]);
    }

    [Fact]
    public void Encode_UnknownWord_UsesWordPiecesNotUnk()
    {
        using var batch = fixture.Backbone.Encode(["zyx"], null, 16);
        Assert.Equal(new long[] { Id("[CLS]"), Id("z"), Id("##y"), Id("##x"), Id("[SEP]") }, Rows(batch.InputIds)[0]);
    }

    [Fact]
    public void Encode_LongInputs_TruncateToMaxLengthLongestFirst()
    {
        var longText = string.Join(' ', Enumerable.Repeat("good", 50));
        using var single = fixture.Backbone.Encode([longText], null, 16);
        var row = Rows(single.InputIds)[0];
        Assert.Equal(16, row.Length);
        Assert.Equal(Id("[CLS]"), row[0]);
        Assert.Equal(Id("[SEP]"), row[^1]);

        // 20 + 3 tokens into 12 - 3 = 9: longest-first keeps the short side whole and cuts the long one to 6.
        using var pair = fixture.Backbone.Encode([string.Join(' ', Enumerable.Repeat("bad", 20))], ["great film again"], 12);
        var ids = Rows(pair.InputIds)[0];
        Assert.Equal(12, ids.Length);
        Assert.Equal(Enumerable.Repeat(Id("bad"), 6), ids[1..7]);
        Assert.Equal(new long[] { Id("[SEP]"), Id("great"), Id("film"), Id("again"), Id("[SEP]") }, ids[7..]);
        Assert.Equal(new long[] { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1 }, Rows(pair.TokenTypeIds)[0]);
    }

    [Fact]
    public void Encode_ManyTextsIncludingEmpty_KeepsEveryExample()
    {
        var texts = Enumerable.Range(0, 37).Select(i => i == 5 ? "" : $"text number {i}").ToList();
        using var batch = fixture.Backbone.Encode(texts, null, 8);
        Assert.Equal(37, batch.InputIds.shape[0]);
        Assert.Equal(new long[] { Id("[CLS]"), Id("[SEP]") }, Rows(batch.InputIds)[5].Take(2));
        Assert.Equal(2, Rows(batch.AttentionMask)[5].Sum());
    }
}
