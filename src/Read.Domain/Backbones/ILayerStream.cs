using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>
/// A backbone run one step at a time with only that step's weights resident, read from the checkpoint when the step is
/// loaded: step 0 is the embeddings, step i (1..L) layer i (for decoders step L includes the final norm). Running every
/// step in order over a batch gives what <see cref="IBackboneModel.Forward"/> gives, index by index.
/// </summary>
internal interface ILayerStream : IDisposable
{
    /// <summary>L: steps are 0..L.</summary>
    int Layers { get; }

    /// <summary>The dtype of the states passed between steps (what the backbone computes in).</summary>
    ScalarType ComputeDtype { get; }

    /// <summary>Reads the weights of <paramref name="step"/> from disk, freeing the previous step's; returns the bytes read.</summary>
    long Load(int step);

    /// <summary>
    /// Hidden state <paramref name="step"/> of a right-padded batch, (B, S, d) in <see cref="ComputeDtype"/>: from the ids
    /// at step 0, else from <paramref name="previous"/> (state step − 1). Masks and positions come from the batch, as in
    /// the ordinary forward.
    /// </summary>
    Tensor Run(int step, Tensor? previous, EncodedBatch batch);
}
