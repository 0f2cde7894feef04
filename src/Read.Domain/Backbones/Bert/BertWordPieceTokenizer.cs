using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;
using Read.Domain.Backbones.Tokenization;
using TorchSharp;

namespace Read.Domain.Backbones.Bert;

/// <summary>
/// BERT's tokenizer: the basic step (cleaning, accents, case, punctuation) is <see cref="BertBasicTokenizer"/>'s, per
/// settings; Microsoft.ML.Tokenizers does WordPiece only. [CLS] a [SEP] (b [SEP]), token types 0 then 1.
/// </summary>
internal sealed class BertWordPieceTokenizer : IBackboneTokenizer
{
    private readonly BertTokenizer wordPiece;
    private readonly Dictionary<string, int> specialTokenIds;
    private readonly Regex specialTokens;

    public BertWordPieceTokenizer(IReadOnlyList<string> vocabulary, TokenizerSettings settings)
    {
        Settings = settings;
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(string.Join("\n", vocabulary) + "\n"));
        wordPiece = BertTokenizer.Create(stream, new BertOptions { ApplyBasicTokenization = false, LowerCaseBeforeTokenization = false });
        specialTokenIds = new[] { wordPiece.PaddingToken, wordPiece.UnknownToken, wordPiece.ClassificationToken, wordPiece.SeparatorToken, wordPiece.MaskingToken }
            .Select(token => (Token: token, Index: IndexOf(vocabulary, token))).Where(t => t.Index >= 0)
            .ToDictionary(t => t.Token, t => t.Index, StringComparer.Ordinal);
        specialTokens = new Regex(specialTokenIds.Count == 0 ? "(?!)" : string.Join('|', specialTokenIds.Keys.Select(Regex.Escape)), RegexOptions.CultureInvariant);
    }

    public TokenizerSettings Settings { get; }

    public EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings settings)
    {
        if (settings.Kind != TokenizerSettings.WordPieceKind)
            throw new InvalidOperationException($"A BERT backbone tokenizes with WordPiece, not {settings.Kind}.");
        var rows = new List<(int[] Ids, int[] Types)>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var pair = pairs?[i];
            var budget = maxLength - (pair is null ? 2 : 3);
            var a = FirstWordPieceIds(settings, texts[i] ?? "", budget);
            List<int>? b = pair is null ? null : FirstWordPieceIds(settings, pair, budget);
            // Longest-first: drop the last token of whichever side is longer (the pair on a tie), as Hugging Face does.
            while (a.Count + (b?.Count ?? 0) > budget)
            {
                if (b is not null && b.Count >= a.Count)
                    b.RemoveAt(b.Count - 1);
                else
                    a.RemoveAt(a.Count - 1);
            }

            var ids = new List<int>(maxLength) { wordPiece.ClassificationTokenId };
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

        return EncodedBatch.FromRows(rows, wordPiece.PaddingTokenId);
    }

    public void Dispose()
    {
    }

    private static int IndexOf(IReadOnlyList<string> vocabulary, string token)
    {
        for (var i = 0; i < vocabulary.Count; i++)
        {
            if (vocabulary[i] == token)
                return i;
        }

        return -1;
    }

    // Neither side keeps more than the budget's tokens, and longest-first truncation reads each side's length only up to
    // the budget: a long text's first tokens are all that can matter, so only a prefix of it is tokenized.
    private List<int> FirstWordPieceIds(TokenizerSettings settings, string text, int budget) =>
        TokenPrefix.Encode(text, budget, t => WordPieceIds(settings, t), (t, i) => BertBasicTokenizer.IsWordStart(t, i, settings));

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
