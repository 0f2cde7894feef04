using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>The frozen forward of one architecture: everything the service path sees of a model.</summary>
public interface IBackboneModel : IDisposable
{
    BackboneShape Shape { get; }

    /// <summary>The TorchSharp module (parameters, state dict, eval mode).</summary>
    nn.Module Module { get; }

    /// <summary>
    /// L + 1 float32 tensors of (B, S, d) for a right-padded batch: index 0 is the embedding output, i the output of
    /// layer i (for decoders the last one after the final norm, as Hugging Face's hidden_states are).
    /// </summary>
    Tensor[] Forward(EncodedBatch batch);
}

/// <summary>Text to a right-padded batch of ids and mask, the way the checkpoint's own tokenizer does it.</summary>
public interface IBackboneTokenizer : IDisposable
{
    /// <summary>The settings the checkpoint declares (what the model was trained with).</summary>
    TokenizerSettings Settings { get; }

    /// <summary>
    /// One row per example, truncated to <paramref name="maxLength"/> tokens (longest-first for pairs), padded to the
    /// longest row. <paramref name="settings"/> are those an adapter was trained with.
    /// </summary>
    EncodedBatch Encode(IReadOnlyList<string> texts, IReadOnlyList<string?>? pairs, int maxLength, TokenizerSettings settings);
}
