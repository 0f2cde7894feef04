using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>A frozen, loaded backbone: model, tokenizer and identity (weights hash).</summary>
public sealed class Backbone : IDisposable
{
    // WordPiece only: the basic step (cleaning, accents, case, punctuation) is BertBasicTokenizer's, per settings.
    private readonly BertTokenizer wordPiece;
    private readonly Dictionary<string, int> specialTokenIds;
    private readonly Regex specialTokens;
    private readonly Lock forwardLock = new();
    private long forwardCalls;

    internal Backbone(string id, BertConfig config, BertModel model, IReadOnlyList<string> vocabulary, TokenizerSettings tokenizerSettings, string weightsHash)
    {
        Id = id;
        Config = config;
        Model = model;
        TokenizerSettings = tokenizerSettings;
        WeightsHash = weightsHash;
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(string.Join("\n", vocabulary) + "\n"));
        wordPiece = BertTokenizer.Create(stream, new BertOptions { ApplyBasicTokenization = false, LowerCaseBeforeTokenization = false });
        specialTokenIds = new[] { wordPiece.PaddingToken, wordPiece.UnknownToken, wordPiece.ClassificationToken, wordPiece.SeparatorToken, wordPiece.MaskingToken }
            .Select(token => (Token: token, Index: IndexOf(vocabulary, token))).Where(t => t.Index >= 0)
            .ToDictionary(t => t.Token, t => t.Index, StringComparer.Ordinal);
        specialTokens = new Regex(specialTokenIds.Count == 0 ? "(?!)" : string.Join('|', specialTokenIds.Keys.Select(Regex.Escape)), RegexOptions.CultureInvariant);
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

    /// <summary>The tokenizer settings the checkpoint declares (what the model was trained with).</summary>
    public TokenizerSettings TokenizerSettings { get; }

    /// <summary>
    /// [CLS] a [SEP] (b [SEP]) per example, truncated to <paramref name="maxLength"/> (longest-first for pairs),
    /// padded to the longest example. Every example yields a row. <paramref name="settings"/> defaults to the
    /// checkpoint's own; an adapter passes the settings it was trained with.
    /// </summary>
    public EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (pairs is not null && pairs.Count != texts.Count)
            throw new ArgumentException("pairs must have one entry per text.", nameof(pairs));
        var limit = Math.Min(maxLength, Config.MaxPositionEmbeddings);
        if (limit < 4)
            throw new ArgumentOutOfRangeException(nameof(maxLength), "max length must be at least 4.");

        settings ??= TokenizerSettings;
        var rows = new List<(int[] Ids, int[] Types)>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var a = WordPieceIds(settings, texts[i] ?? "");
            var pair = pairs?[i];
            List<int>? b = pair is null ? null : WordPieceIds(settings, pair);
            var budget = limit - (b is null ? 2 : 3);
            // Longest-first: drop the last token of whichever side is longer (the pair on a tie), as Hugging Face does.
            while (a.Count + (b?.Count ?? 0) > budget)
            {
                if (b is not null && b.Count >= a.Count)
                    b.RemoveAt(b.Count - 1);
                else
                    a.RemoveAt(a.Count - 1);
            }

            var ids = new List<int>(limit) { wordPiece.ClassificationTokenId };
            ids.AddRange(a);
            ids.Add(wordPiece.SeparatorTokenId);
            var types = Enumerable.Repeat(0, ids.Count).ToList();
            if (b is not null)
            {
                ids.AddRange(b);
                ids.Add(wordPiece.SeparatorTokenId);
                types.AddRange(Enumerable.Repeat(1, b.Count + 1));
            }

            rows.Add((ids.ToArray(), types.ToArray()));
        }

        var width = rows.Count == 0 ? 0 : rows.Max(r => r.Ids.Length);
        var inputIds = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        var tokenTypes = new long[rows.Count * width];
        Array.Fill(inputIds, wordPiece.PaddingTokenId);
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

    private static int IndexOf(IReadOnlyList<string> vocabulary, string token)
    {
        for (var i = 0; i < vocabulary.Count; i++)
        {
            if (vocabulary[i] == token)
                return i;
        }

        return -1;
    }

    // Special tokens typed in the text ("q [SEP] a") keep their ids, as Hugging Face's added tokens do; the text
    // between them goes through basic tokenization and WordPiece.
    private List<int> WordPieceIds(TokenizerSettings settings, string text)
    {
        var ids = new List<int>();
        var start = 0;
        foreach (var match in specialTokens.EnumerateMatches(text))
        {
            ids.AddRange(wordPiece.EncodeToIds(BertBasicTokenizer.Words(text[start..match.Index], settings), addSpecialTokens: false));
            ids.Add(specialTokenIds[text.Substring(match.Index, match.Length)]);
            start = match.Index + match.Length;
        }

        ids.AddRange(wordPiece.EncodeToIds(BertBasicTokenizer.Words(text[start..], settings), addSpecialTokens: false));
        return ids;
    }
}
