namespace Read.Domain.SideNetwork;

/// <summary>The shape of a READ side network: everything its parameter list depends on.</summary>
/// <param name="HiddenSize">d, the backbone width.</param>
/// <param name="SideHiddenSize">r, the cell's hidden size.</param>
/// <param name="Cell">gru, rnn (Elman, tanh) or lstm.</param>
/// <param name="Aggregation">mean of h_1..h_K, or last (h_K).</param>
/// <param name="InputNorm">layernorm, rmsnorm or none: the trainable norm applied to every φ_i before the cell.</param>
/// <param name="ZeroInitOutput">Start W_out and b_out at zero so the untrained network is the identity.</param>
/// <param name="InitialState">zeros, or embedding: h_0 = W_0 · norm(φ_0), a d→r projection of the embedding output.</param>
public sealed record ReadSideNetworkConfig(
    int HiddenSize,
    int SideHiddenSize,
    RecurrentCell Cell = RecurrentCell.Gru,
    LayerAggregation Aggregation = LayerAggregation.Mean,
    InputNorm InputNorm = InputNorm.LayerNorm,
    bool ZeroInitOutput = true,
    InitialState InitialState = InitialState.Zeros);
