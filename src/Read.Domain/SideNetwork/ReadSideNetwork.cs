using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.SideNetwork;

#pragma warning disable IDE1006 // field names are state-dict keys

/// <summary>
/// The READ side network: a recurrent cell run across the backbone's layers that learns a correction δ to the
/// final hidden state. x_i = LN(φ_i), h_i = cell(h_{i-1}, x_i) with h_0 = 0, a = mean_i h_i or h_L,
/// δ = W_out a + b_out, φ'_L = φ_L + δ. Its size depends on d and r only, never on L.
/// </summary>
public sealed class ReadSideNetwork : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm? norm;
    private readonly nn.Module cell;
    private readonly Linear joiner;

    /// <param name="hiddenSize">d, the backbone width.</param>
    /// <param name="sideHiddenSize">r, the cell's hidden size.</param>
    /// <param name="cell">gru, rnn or lstm.</param>
    /// <param name="aggregation">mean or last.</param>
    /// <param name="inputLayerNorm">Normalise each φ_i with a trainable LayerNorm before the cell.</param>
    /// <param name="zeroInitOutput">Start W_out and b_out at zero so the untrained network is the identity.</param>
    public ReadSideNetwork(int hiddenSize, int sideHiddenSize, string cell = "gru", string aggregation = "mean", bool inputLayerNorm = true, bool zeroInitOutput = true)
        : base(nameof(ReadSideNetwork))
    {
        if (aggregation is not ("mean" or "last"))
            throw new ArgumentException($"Unknown aggregation '{aggregation}'.", nameof(aggregation));
        Aggregation = aggregation;
        CellType = cell;
        if (inputLayerNorm)
            norm = nn.LayerNorm(hiddenSize);
        this.cell = cell switch
        {
            "gru" => nn.GRU(hiddenSize, sideHiddenSize, batchFirst: true),
            "rnn" => nn.RNN(hiddenSize, sideHiddenSize, batchFirst: true),
            "lstm" => nn.LSTM(hiddenSize, sideHiddenSize, batchFirst: true),
            _ => throw new ArgumentException($"Unknown cell '{cell}'.", nameof(cell)),
        };
        joiner = nn.Linear(sideHiddenSize, hiddenSize);
        if (zeroInitOutput)
        {
            using var noGrad = no_grad();
            joiner.weight!.zero_();
            joiner.bias!.zero_();
        }

        RegisterComponents();
    }

    public string CellType { get; }

    public string Aggregation { get; }

    /// <summary>States (N, L, d) of the selected layers, the last being φ_L, in; corrected φ'_L (N, d) out.</summary>
    public override Tensor forward(Tensor states)
    {
        using var scope = NewDisposeScope();
        var x = norm is null ? states : norm.call(states); // (N, L, d)
        // The whole recurrence as one batched sequence over the layer axis: N sequences of length L.
        var h = cell switch
        {
            GRU gru => gru.call(x).Item1,
            RNN rnn => rnn.call(x).Item1,
            LSTM lstm => lstm.call(x).Item1,
            _ => throw new InvalidOperationException("Unknown cell."),
        }; // (N, L, r)
        var a = Aggregation == "mean" ? h.mean([1]) : h.select(1, -1); // (N, r)
        var delta = joiner.call(a); // (N, d)
        return (states.select(1, -1) + delta).MoveToOuterDisposeScope();
    }
}
