using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

#pragma warning disable IDE1006 // lora_A / lora_B are PEFT's tensor names

/// <summary>
/// LoRA's low-rank update of one frozen <see cref="Linear"/>: y = W x + b + (α / r) · B A x. Attached as a forward hook,
/// so the backbone's modules and state-dict names stay as they are. A starts kaiming-uniform and B at zero (as in the
/// LoRA reference, loralib), so an attached, untrained LoraLinear leaves every output exactly unchanged.
/// </summary>
internal sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    private readonly Linear lora_A;
    private readonly Linear lora_B;

    public LoraLinear(long inFeatures, long outFeatures, int rank, double alpha) : base(nameof(LoraLinear))
    {
        lora_A = nn.Linear(inFeatures, rank, hasBias: false); // weight (r, d_in)
        lora_B = nn.Linear(rank, outFeatures, hasBias: false); // weight (d_out, r)
        using (no_grad())
        {
            // loralib: nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5)); nn.init.zeros_(lora_B).
            nn.init.kaiming_uniform_(lora_A.weight!, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight!);
        }

        Rank = rank;
        Scaling = alpha / rank;
        RegisterComponents();
    }

    public int Rank { get; }

    /// <summary>α / r.</summary>
    public double Scaling { get; }

    public Parameter A => lora_A.weight!;

    public Parameter B => lora_B.weight!;

    /// <summary>The update alone: (…, d_in) in, (…, d_out) out.</summary>
    public override Tensor forward(Tensor input)
    {
        using var down = lora_A.call(input); // (…, r)
        using var up = lora_B.call(down); // (…, d_out)
        return up.Times(Scaling);
    }

    /// <summary>Adds this update to every later output of <paramref name="target"/>; dispose the result to detach.</summary>
    public IDisposable AttachTo(Linear target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.weight!.shape[1] != A.shape[1] || target.weight.shape[0] != B.shape[0])
            throw new ArgumentException($"LoRA of shape {A.shape[1]}→{B.shape[0]} does not fit a Linear {target.weight.shape[1]}→{target.weight.shape[0]}.", nameof(target));
        // The hook's tensors (the delta, the frozen output it replaces) belong to the caller's dispose scope.
        var remover = target.register_forward_hook((_, input, output) => output.Plus(call(input)));
        return new HookHandle(remover.remove);
    }
}
