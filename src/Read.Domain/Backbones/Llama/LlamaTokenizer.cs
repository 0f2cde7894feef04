using Read.Domain.Backbones.Tokenization;

namespace Read.Domain.Backbones.Llama;

/// <summary>
/// A Llama-family checkpoint's own tokenizer (<see cref="DecoderTokenizer"/>: tokenizer.json or tokenizer.model, BOS/EOS
/// from tokenizer_config.json and config.json) as the backbone's encoder. Decoders have no token types: all zeros.
/// </summary>
internal sealed class LlamaTokenizer : IBackboneTokenizer
{
    private readonly DecoderTokenizer tokenizer;

    private LlamaTokenizer(DecoderTokenizer tokenizer)
    {
        this.tokenizer = tokenizer;
        Settings = TokenizerSettings.Fingerprinted(tokenizer.Kind, tokenizer.Fingerprint);
    }

    public TokenizerSettings Settings { get; }

    public static LlamaTokenizer Load(string directory, LlamaConfig config) =>
        new(DecoderTokenizer.Load(directory, config.BosTokenId, config.EosTokenId, config.PadTokenId));

    public EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings settings)
    {
        // Nothing to switch: an adapter trained on other tokenizer files or settings is refused, not re-tokenized.
        if (settings != Settings)
            throw new InvalidOperationException($"This backbone's tokenizer is {Settings}; the input asks for {settings}.");
        var rows = new List<(int[] Ids, int[] Types)>(texts.Count);
        for (var i = 0; i < texts.Count; i++)
        {
            var ids = tokenizer.EncodeExample(texts[i] ?? "", pairs?[i], maxLength);
            rows.Add((ids, new int[ids.Length]));
        }

        return EncodedBatch.FromRows(rows, tokenizer.PadTokenId);
    }

    public void Dispose() => tokenizer.Dispose();
}
