using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>A frozen, loaded backbone: model, tokenizer and identity (weights hash).</summary>
public sealed class Backbone : IDisposable
{
    private readonly BertTokenizer tokenizer;
    private readonly Lock forwardLock = new();
    private long forwardCalls;

    internal Backbone(string id, BertConfig config, BertModel model, BertTokenizer tokenizer, string weightsHash, bool lowerCase)
    {
        Id = id;
        Config = config;
        Model = model;
        this.tokenizer = tokenizer;
        WeightsHash = weightsHash;
        LowerCase = lowerCase;
        // libtorch defaults to the physical cores it sees; a container's CPU quota is what .NET reports.
        if (torch.get_num_threads() < Environment.ProcessorCount)
            torch.set_num_threads(Environment.ProcessorCount);
    }

    public string Id { get; }

    public BertConfig Config { get; }

    /// <summary>sha256 (lowercase hex) of the model.safetensors bytes.</summary>
    public string WeightsHash { get; }

    /// <summary>Number of backbone forwards so far; training must never add to it.</summary>
    public long ForwardCalls => Interlocked.Read(ref forwardCalls);

    /// <summary>The model in eval mode with every parameter frozen.</summary>
    public BertModel Model { get; }

    /// <summary>Whether the tokenizer lower-cases text first.</summary>
    public bool LowerCase { get; }

    /// <summary>
    /// [CLS] a [SEP] (b [SEP]) per example, truncated to <paramref name="maxLength"/> (longest-first for pairs),
    /// padded to the longest example. Every example yields a row.
    /// </summary>
    public EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException("pairs must have one entry per text.", nameof(pairs));
        var limit = Math.Min(maxLength, Config.MaxPositionEmbeddings);
        if (limit < 4)
            throw new ArgumentOutOfRangeException(nameof(maxLength), "max length must be at least 4.");

        var rows = new List<(int[] Ids, int[] Types)>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var a = tokenizer.EncodeToIds(texts[i] ?? "", addSpecialTokens: false).ToList();
            var pair = pairs?[i];
            List<int>? b = pair is null ? null : tokenizer.EncodeToIds(pair, addSpecialTokens: false).ToList();
            var budget = limit - (b is null ? 2 : 3);
            // Longest-first: drop the last token of whichever side is longer (the pair on a tie), as Hugging Face does.
            while (a.Count + (b?.Count ?? 0) > budget)
            {
                if (b is not null && b.Count >= a.Count)
                    b.RemoveAt(b.Count - 1);
                else
                    a.RemoveAt(a.Count - 1);
            }

            var ids = new List<int>(limit) { tokenizer.ClassificationTokenId };
            ids.AddRange(a);
            ids.Add(tokenizer.SeparatorTokenId);
            var types = Enumerable.Repeat(0, ids.Count).ToList();
            if (b is not null)
            {
                ids.AddRange(b);
                ids.Add(tokenizer.SeparatorTokenId);
                types.AddRange(Enumerable.Repeat(1, b.Count + 1));
            }

            rows.Add((ids.ToArray(), types.ToArray()));
        }

        var width = rows.Count == 0 ? 0 : rows.Max(r => r.Ids.Length);
        var inputIds = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        var tokenTypes = new long[rows.Count * width];
        Array.Fill(inputIds, tokenizer.PaddingTokenId);
        for (var r = 0; r < rows.Count; r++)
        {
            for (var t = 0; t < rows[r].Ids.Length; t++)
            {
                inputIds[r * width + t] = rows[r].Ids[t];
                mask[r * width + t] = 1;
                tokenTypes[r * width + t] = rows[r].Types[t];
            }
        }

        long[] shape = [rows.Count, width];
        return new EncodedBatch(torch.tensor(inputIds, shape), torch.tensor(mask, shape), torch.tensor(tokenTypes, shape));
    }

    /// <summary>
    /// Backbone forward under no_grad (not inference mode: its tensors could not feed the side network's autograd
    /// graph later): L + 1 tensors of (B, S, d); index 0 is the embedding output, i the output of layer i.
    /// </summary>
    public Tensor[] HiddenStates(EncodedBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        lock (forwardLock)
        {
            using var noGrad = no_grad();
            Interlocked.Increment(ref forwardCalls);
            return Model.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        }
    }

    public void Dispose() => Model.Dispose();
}
