using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;
using static TorchSharp.torch;

namespace Read.Domain.Batches;

/// <summary>
/// A batch's inputs on one backbone, answered through the precompute path: per chunk of distinct texts every layer any
/// adapter reads is computed once — resident forward, or layer-streamed (<see cref="StreamedPrecompute"/>, states
/// passed through scratch files in float32 so results equal online predict's) when the backbone is registered streamed
/// — then each adapter's side network and head run on its own rows. Peak memory: one chunk's ids, one batch's states.
/// </summary>
internal static class BatchForward
{
    private const int MaxBatchExamples = 32;
    private const int TokenBudget = 4096;

    /// <summary>One input: the adapter that answers it and its text.</summary>
    public sealed record Item(LoadedAdapter Adapter, string Text, string? Pair);

    /// <summary>
    /// What must match for items to share one precompute: the tokenization (max length, tokenizer settings) and the
    /// positions gathered (pooling).
    /// </summary>
    public static (int MaxLength, TokenizerSettings Tokenizer, Pooling Pooling) GroupKey(LoadedAdapter adapter) =>
        (adapter.Config.MaxLength, adapter.Config.Tokenizer.Settings, adapter.Config.Pooling);

    /// <summary>
    /// Predictions for <paramref name="items"/> (all of one <see cref="GroupKey"/>), in item order. Cancellation is seen
    /// between chunks (and, streamed, between batches); <paramref name="answered"/> gets each item's prediction as soon as
    /// its chunk has it (so a cancelled run keeps what it answered), <paramref name="chunkDone"/> the items answered so far.
    /// </summary>
    public static Prediction[] Predict(
        Backbone backbone, IReadOnlyList<Item> items, int chunkTexts, string scratchDirectory, Action<int, Prediction>? answered, Action<int>? chunkDone,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(items);
        var predictions = new Prediction[items.Count];
        if (items.Count == 0)
            return predictions;
        var key = GroupKey(items[0].Adapter);
        if (items.Any(i => GroupKey(i.Adapter) != key))
            throw new ArgumentException("Items of one batch forward must share max length, tokenizer settings and pooling.", nameof(items));
        foreach (var adapter in items.Select(i => i.Adapter).Distinct())
        {
            if (!string.Equals(adapter.Config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"The adapter belongs to backbone weights {adapter.Config.BackboneWeightsHash}, not {backbone.WeightsHash}.");
        }

        // Every item of a text reads the same states: each distinct (text, pair) runs once.
        var distinct = new Dictionary<(string, string?), int>();
        var inputOf = new int[items.Count];
        for (var n = 0; n < items.Count; n++)
        {
            var input = (items[n].Text, items[n].Pair);
            if (!distinct.TryGetValue(input, out var u))
                distinct[input] = u = distinct.Count;
            inputOf[n] = u;
        }

        var inputs = distinct.Keys.ToList();
        var itemsOfInput = new List<int>[inputs.Count];
        for (var n = 0; n < items.Count; n++)
            (itemsOfInput[inputOf[n]] ??= []).Add(n);
        var layers = items.SelectMany(i => i.Adapter.Layout.Channels).Distinct().Order().ToArray();
        var done = 0;
        using var noGrad = no_grad();
        for (var start = 0; start < inputs.Count; start += chunkTexts)
        {
            ct.ThrowIfCancellationRequested();
            var chunk = inputs.Skip(start).Take(chunkTexts).ToList();
            RunChunk(backbone, key, layers, chunk, scratchDirectory, items, itemsOfInput, start, predictions, ct);
            foreach (var n in Enumerable.Range(start, chunk.Count).SelectMany(u => itemsOfInput[u]))
                answered?.Invoke(n, predictions[n]);
            done += Enumerable.Range(start, chunk.Count).Sum(u => itemsOfInput[u].Count);
            chunkDone?.Invoke(done);
        }

        return predictions;
    }

    private static void RunChunk(
        Backbone backbone, (int MaxLength, TokenizerSettings Tokenizer, Pooling Pooling) key, int[] layers, List<(string Text, string? Pair)> chunk,
        string scratchDirectory, IReadOnlyList<Item> items, List<int>[] itemsOfInput, int start, Prediction[] predictions, CancellationToken ct)
    {
        var texts = chunk.Select(c => c.Text).ToList();
        var pairs = chunk.Any(c => c.Pair is not null) ? chunk.Select(c => c.Pair).ToList() : null;
        var lengths = TokenLengths.Of(backbone, texts, pairs, key.MaxLength, key.Tokenizer);
        var batches = TokenLengths.SortedBatches(lengths, MaxBatchExamples, TokenBudget);
        var encoded = batches.Select(b => backbone.Encode(b.Select(i => texts[i]).ToList(), pairs is null ? null : b.Select(i => pairs[i]).ToList(), key.MaxLength, key.Tokenizer)).ToList();
        try
        {
            IEnumerator<Tensor>? streamed = null;
            if (!backbone.IsResident)
            {
                // bf16 has float32's range, so the storability check refuses only NaN and infinity; the states stay float32.
                var spec = new ActivationCacheSpec(key.MaxLength, key.Pooling, layers, CacheDtype.Bf16, key.Tokenizer);
                streamed = StreamedPrecompute.States(backbone, encoded, spec, ScalarType.Float32, scratchDirectory, null, null, ct).GetEnumerator();
            }

            using (streamed)
            {
                for (var b = 0; b < batches.Count; b++)
                {
                    ct.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    Tensor states; // (P_b, C, d): C = layers, positions row by row
                    if (streamed is null)
                        states = HiddenStateGather.Gather(backbone.HiddenStates(encoded[b]), encoded[b].AttentionMask, layers, key.Pooling).States;
                    else if (streamed.MoveNext())
                        states = streamed.Current;
                    else
                        throw new InvalidOperationException("The streamed precompute ended before the last batch.");
                    RunHeads(backbone, key.Pooling, layers, states, encoded[b], batches[b], items, itemsOfInput, start, predictions);
                }
            }
        }
        finally
        {
            foreach (var batch in encoded)
                batch.Dispose();
        }
    }

    /// <summary>Each adapter's rows of one batch through its side network and head.</summary>
    private static void RunHeads(
        Backbone backbone, Pooling pooling, int[] layers, Tensor states, EncodedBatch batch, int[] rowsToChunk,
        IReadOnlyList<Item> items, List<int>[] itemsOfInput, int start, Prediction[] predictions)
    {
        var rows = rowsToChunk.Length;
        var positions = pooling.IsSinglePosition()
            ? Enumerable.Repeat(1L, rows).ToArray()
            : batch.AttentionMask.sum(1).to_type(ScalarType.Int64).cpu().data<long>().ToArray();
        var offsets = new long[rows];
        for (var r = 1; r < rows; r++)
            offsets[r] = offsets[r - 1] + positions[r - 1];

        // (row, item) pairs per adapter.
        var byAdapter = new Dictionary<LoadedAdapter, List<(int Row, int Item)>>();
        for (var r = 0; r < rows; r++)
            foreach (var n in itemsOfInput[start + rowsToChunk[r]])
            {
                if (!byAdapter.TryGetValue(items[n].Adapter, out var list))
                    byAdapter[items[n].Adapter] = list = [];
                list.Add((r, n));
            }

        foreach (var (adapter, mine) in byAdapter)
        {
            var index = new List<long>();
            var segments = new List<long>();
            for (var k = 0; k < mine.Count; k++)
            {
                var row = mine[k].Row;
                for (var p = 0L; p < positions[row]; p++)
                {
                    index.Add(offsets[row] + p);
                    segments.Add(k);
                }
            }

            var channels = adapter.Layout.Channels.Select(l => (long)Array.IndexOf(layers, l)).ToArray();
            var selected = states.index_select(0, tensor(index.ToArray(), device: states.device)).index_select(1, tensor(channels, device: states.device)); // (P_a, C_a, d)
            var config = adapter.Config;
            var outputs = adapter.ClassifierOn(backbone.Device)
                .Forward(selected, tensor(segments.ToArray(), device: states.device), mine.Count)
                .to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
            var decoded = AdapterPredictor.Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1);
            for (var k = 0; k < mine.Count; k++)
                predictions[mine[k].Item] = decoded[k];
        }
    }
}
