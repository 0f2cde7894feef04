using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.SideNetwork;

#pragma warning disable IDE1006 // field names are state-dict keys

/// <summary>
/// The READ side network: a recurrent cell run across the backbone's layers that learns a correction δ to the
/// final hidden state. x_i = norm(φ_i), h_i = cell(h_{i-1}, x_i) with h_0 = 0 or W_0 · norm(φ_0),
/// a = mean_i h_i or h_K, δ = W_out a + b_out, φ'_L = φ_L + δ. Its size depends on d and r only, never on L.
/// </summary>
public sealed class ReadSideNetwork : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? norm;
    private readonly nn.Module cell;
    private readonly Linear joiner;
    private readonly Linear? initial;
    private readonly LayerLayout? layout;

    /// <summary>A side network whose input channels are all recurrence inputs, the last being φ_L.</summary>
    public ReadSideNetwork(int hiddenSize, int sideHiddenSize, RecurrentCell cell = RecurrentCell.Gru, LayerAggregation aggregation = LayerAggregation.Mean, bool inputLayerNorm = true, bool zeroInitOutput = true)
        : this(new ReadSideNetworkConfig(hiddenSize, sideHiddenSize, cell, aggregation, inputLayerNorm ? InputNorm.LayerNorm : InputNorm.None, zeroInitOutput))
    {
    }

    /// <param name="config">Sizes and variants.</param>
    /// <param name="layout">What each channel of the input carries; null means every channel feeds the recurrence and
    /// the last one is φ_L (no embedding channel).</param>
    public ReadSideNetwork(ReadSideNetworkConfig config, LayerLayout? layout = null)
        : base(nameof(ReadSideNetwork))
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!Enum.IsDefined(config.Aggregation) || !Enum.IsDefined(config.InitialState))
            throw new ArgumentException($"Unknown aggregation {config.Aggregation} or initial state {config.InitialState}.", nameof(config));
        if (config.InitialState == InitialState.Embedding && layout is not { Embedding: true })
            throw new ArgumentException("An embedding initial state needs a layer layout that carries layer 0.", nameof(layout));
        Config = config;
        this.layout = layout;
        int d = config.HiddenSize, r = config.SideHiddenSize;
        norm = config.InputNorm switch
        {
            InputNorm.LayerNorm => nn.LayerNorm(d, device: CPU),
            InputNorm.RmsNorm => new RmsNorm(d),
            InputNorm.None => null,
            _ => throw new ArgumentException($"Unknown input_norm '{config.InputNorm}'.", nameof(config)),
        };
        this.cell = config.Cell switch
        {
            // Batch-first: the states arrive (N, K, d), and on CPU this layout's step is about half the sequence-first
            // one (docs/benchmarks/side-network.md). Same parameters and state-dict names either way.
            RecurrentCell.Gru => nn.GRU(d, r, batchFirst: true, device: CPU),
            RecurrentCell.Rnn => nn.RNN(d, r, batchFirst: true, device: CPU),
            RecurrentCell.Lstm => nn.LSTM(d, r, batchFirst: true, device: CPU),
            _ => throw new ArgumentException($"Unknown cell '{config.Cell}'.", nameof(config)),
        };
        // Built on the CPU whatever the default device: the seeded initialisation is the same on every device, and
        // the trainer or predictor moves the module to Read:Device.
        joiner = nn.Linear(r, d, device: CPU);
        if (config.ZeroInitOutput)
        {
            using var noGrad = no_grad();
            joiner.weight!.zero_();
            joiner.bias!.zero_();
        }

        if (config.InitialState == InitialState.Embedding)
            initial = nn.Linear(d, r, hasBias: false, device: CPU);

        RegisterComponents();
    }

    public ReadSideNetworkConfig Config { get; }

    public RecurrentCell CellType => Config.Cell;

    public LayerAggregation Aggregation => Config.Aggregation;

    /// <summary>States (N, C, d) in; corrected φ'_L (N, d) out, one row per position.</summary>
    public override Tensor forward(Tensor states)
    {
        using var scope = NewDisposeScope();
        return Final(states).Plus(Join(Aggregate(states))).MoveToOuterDisposeScope();
    }

    /// <summary>φ_L (N, d): the channel the correction is added to.</summary>
    public Tensor Final(Tensor states) => states.select(1, layout?.FinalIndex ?? -1);

    /// <summary>δ = W_out a + b_out: (N, r) in, (N, d) out. Linear, so it commutes with mean pooling.</summary>
    public Tensor Join(Tensor aggregated) => joiner.call(aggregated);

    /// <summary>
    /// a (N, r): the recurrence over the input layers, run as one batched cell call on N sequences of length K.
    /// </summary>
    public Tensor Aggregate(Tensor states)
    {
        using var scope = NewDisposeScope();
        var inputs = layout is null || layout.InputsAreAllChannels ? states : states.index_select(1, tensor(layout.InputIndices, device: states.device)); // (N, K, d)
        var x = Normalise(inputs); // (N, K, d), batch-first
        Tensor? h0 = null;
        if (initial is not null)
            h0 = initial.call(Normalise(states.select(1, layout!.EmbeddingIndex))).unsqueeze(0); // (1, N, r)
        var h = cell switch
        {
            GRU gru => gru.call(x, h0).Item1,
            RNN rnn => rnn.call(x, h0).Item1,
            // LSTM: h_0 from the embedding, c_0 = 0.
            LSTM lstm => lstm.call(x, h0 is null ? null : (h0, zeros_like(h0))).Item1,
            _ => throw new InvalidOperationException("Unknown cell."),
        }; // (N, K, r); h_0 stays (1, N, r): batch_first does not apply to it
        var a = Aggregation == LayerAggregation.Mean ? h.mean([1]) : h.select(1, -1); // (N, r)
        return a.MoveToOuterDisposeScope();
    }

    private Tensor Normalise(Tensor x) => norm is null ? x : norm.call(x);
}
