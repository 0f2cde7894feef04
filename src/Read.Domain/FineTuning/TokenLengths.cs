using Read.Domain.Backbones;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>Token counts per example and length-sorted batches, so backbone forwards pad as little as possible.</summary>
internal static class TokenLengths
{
    private const int ChunkSize = 512;

    /// <summary>Tokens of each input after truncation, [CLS] and [SEP] included (tokenization only, no forward).</summary>
    public static int[] Of(Backbone backbone, IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings? settings = null)
    {
        var lengths = new int[texts.Count];
        for (var start = 0; start < texts.Count; start += ChunkSize)
        {
            var count = Math.Min(ChunkSize, texts.Count - start);
            using var scope = NewDisposeScope();
            using var encoded = backbone.Encode(Slice(texts, start, count), pairs is null ? null : Slice(pairs, start, count), maxLength, settings);
            var sums = encoded.AttentionMask.sum(1).cpu().data<long>().ToArray();
            for (var i = 0; i < count; i++)
                lengths[start + i] = (int)sums[i];
        }

        return lengths;
    }

    /// <summary>
    /// Example indices sorted by length (stable), cut into batches of at most <paramref name="maxExamples"/> examples
    /// and about <paramref name="tokenBudget"/> padded tokens each.
    /// </summary>
    public static List<int[]> SortedBatches(IReadOnlyList<int> lengths, int maxExamples, int tokenBudget)
    {
        var order = Enumerable.Range(0, lengths.Count).OrderBy(i => lengths[i]).ToArray();
        var batches = new List<int[]>();
        var current = new List<int>();
        foreach (var index in order)
        {
            // Sorted ascending, so the newest example is the longest: padded size = count · its length.
            if (current.Count > 0 && (current.Count >= maxExamples || (current.Count + 1) * lengths[index] > tokenBudget))
            {
                batches.Add([.. current]);
                current.Clear();
            }

            current.Add(index);
        }

        if (current.Count > 0)
            batches.Add([.. current]);
        return batches;
    }

    public static List<T> Slice<T>(IReadOnlyList<T> list, int start, int count)
    {
        var result = new List<T>(count);
        for (var i = start; i < start + count; i++)
            result.Add(list[i]);
        return result;
    }
}
