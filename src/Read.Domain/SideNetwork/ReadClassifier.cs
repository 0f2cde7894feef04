using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.SideNetwork;

#pragma warning disable IDE1006 // field names are state-dict keys: every tensor sits under "side." or "head."

/// <summary>
/// Side network plus a linear head on the pooled corrected final state: sequence classification (one output per
/// label) or regression (one output). Pooling is one position per example (cls: first token, last: last real token) or the masked mean over the positions.
/// </summary>
public sealed class ReadClassifier : nn.Module<Tensor, Tensor>
{
    private readonly ReadSideNetwork side;
    private readonly Linear head;

    /// <param name="outputs">Number of labels, or 1 for regression.</param>
    /// <param name="pooling">cls, last or mean.</param>
    public ReadClassifier(ReadSideNetwork side, int hiddenSize, int outputs, Pooling pooling = Pooling.Cls) : base(nameof(ReadClassifier))
    {
        this.side = side;
        head = nn.Linear(hiddenSize, outputs, device: CPU);
        Pooling = pooling;
        Outputs = outputs;
        RegisterComponents();
    }

    public ReadSideNetwork Side => side;

    public Pooling Pooling { get; }

    public int Outputs { get; }

    public long TrainableParameters => parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    /// <summary>One state row per example (N, C, d) in — the first token, or an already pooled state — outputs (N, outputs) out.</summary>
    public override Tensor forward(Tensor states)
    {
        using var corrected = side.call(states); // (N, d)
        return head.call(corrected);
    }

    /// <summary>
    /// Packed positions of <paramref name="count"/> examples in: states (P, C, d) and <paramref name="segments"/> (P),
    /// the example index of each position; outputs (count, outputs) out. With mean pooling the correction is pooled
    /// before the joiner: mean(φ_L + W a + b) = mean(φ_L) + W mean(a) + b, so the r→d projection runs once per
    /// example, not once per position.
    /// </summary>
    public Tensor Forward(Tensor states, Tensor segments, long count)
    {
        ArgumentNullException.ThrowIfNull(states);
        ArgumentNullException.ThrowIfNull(segments);
        if (Pooling.IsSinglePosition() || states.shape[0] == count)
        {
            if (states.shape[0] != count)
                throw new ArgumentException("cls pooling takes one state row per example.", nameof(states));
            return forward(states);
        }

        using var scope = NewDisposeScope();
        var positions = states.shape[0];
        var lengths = zeros(count, device: states.device).IndexAdd_(0, segments, ones(positions, device: states.device)).unsqueeze(1); // (B, 1)
        var final = side.Final(states); // (P, d)
        var aggregated = side.Aggregate(states); // (P, r)
        var pooledFinal = zeros(count, final.shape[1], device: states.device).IndexAdd_(0, segments, final) / lengths; // (B, d)
        var pooledAggregate = zeros(count, aggregated.shape[1], device: states.device).IndexAdd_(0, segments, aggregated) / lengths; // (B, r)
        return head.call(pooledFinal.Plus(side.Join(pooledAggregate))).MoveToOuterDisposeScope();
    }
}
