using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

#pragma warning disable IDE1006 // field names are state-dict keys

/// <summary>
/// A Houlsby bottleneck adapter: h + up(GELU(down(h))), d → m → d. The up-projection starts at zero (weights and bias),
/// so a fresh adapter is exactly the identity. Placed, as Houlsby et al. do, on the output of a sublayer's projection
/// before its residual add and LayerNorm; attached as a forward hook on that projection.
/// </summary>
internal sealed class BottleneckAdapter : nn.Module<Tensor, Tensor>
{
    private readonly Linear down;
    private readonly Linear up;

    public BottleneckAdapter(int hiddenSize, int bottleneck) : base(nameof(BottleneckAdapter))
    {
        down = nn.Linear(hiddenSize, bottleneck);
        up = nn.Linear(bottleneck, hiddenSize);
        using (no_grad())
        {
            up.weight!.zero_();
            up.bias!.zero_();
        }

        RegisterComponents();
    }

    /// <summary>(…, d) in, (…, d) out.</summary>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        var bottleneck = nn.functional.gelu(down.call(hidden)); // (…, m)
        return hidden.Plus(up.call(bottleneck)).MoveToOuterDisposeScope();
    }

    /// <summary>Passes every later output of <paramref name="projection"/> through this adapter; dispose the result to detach.</summary>
    public IDisposable AttachTo(Linear projection)
    {
        ArgumentNullException.ThrowIfNull(projection);
        var remover = projection.register_forward_hook((_, _, output) => call(output));
        return new HookHandle(remover.remove);
    }
}
