using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.SideNetwork;

#pragma warning disable IDE1006 // field names are state-dict keys: every tensor sits under "side." or "head."

/// <summary>Side network plus a linear sequence-classification head on the corrected first-token state.</summary>
public sealed class ReadClassifier : nn.Module<Tensor, Tensor>
{
    private readonly ReadSideNetwork side;
    private readonly Linear head;

    public ReadClassifier(ReadSideNetwork side, int hiddenSize, int numLabels) : base(nameof(ReadClassifier))
    {
        this.side = side;
        head = nn.Linear(hiddenSize, numLabels);
        RegisterComponents();
    }

    public ReadSideNetwork Side => side;

    /// <summary>First-token states (N, L, d) in, logits (N, labels) out.</summary>
    public override Tensor forward(Tensor states)
    {
        using var corrected = side.call(states); // (N, d)
        return head.call(corrected);
    }

    public long TrainableParameters => parameters().Where(p => p.requires_grad).Sum(p => p.numel());
}
