using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.SideNetwork;

#pragma warning disable IDE1006 // field names are state-dict keys

/// <summary>Root-mean-square norm as T5 uses it: x / sqrt(mean(x²) + ε) · γ, no centring and no bias.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double eps;

    public RmsNorm(int size, double eps = 1e-6) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(size, device: CPU));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var scale = x.Power(2).mean([-1], keepdim: true).Plus(eps).rsqrt();
        return (x * scale * weight).MoveToOuterDisposeScope();
    }
}
