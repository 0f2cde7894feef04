using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Bench.Decoders;

#pragma warning disable IDE1006 // lora_A / lora_B are PEFT's names

/// <summary>
/// LoRA on one frozen Linear of the decoder: y = W x + b + (α / r) · B A x, added by a forward hook so LlamaModel's
/// modules stay as they are (its forward calls its Linear fields directly, so replacing a registered module would not
/// be seen). A kaiming-uniform, B zero, as PEFT initialises them.
/// </summary>
internal sealed class LoraAdapter : nn.Module<Tensor, Tensor>
{
    private readonly Linear lora_A;
    private readonly Linear lora_B;
    private readonly double scaling;

    public LoraAdapter(long inFeatures, long outFeatures, int rank, double alpha) : base(nameof(LoraAdapter))
    {
        lora_A = nn.Linear(inFeatures, rank, hasBias: false);
        lora_B = nn.Linear(rank, outFeatures, hasBias: false);
        using (no_grad())
        {
            nn.init.kaiming_uniform_(lora_A.weight!, a: Math.Sqrt(5));
            nn.init.zeros_(lora_B.weight!);
        }

        scaling = alpha / rank;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        // The backbone may compute in bf16; the adapter's weights are float32.
        using var x = input.dtype == ScalarType.Float32 ? input.alias() : input.to_type(ScalarType.Float32);
        using var down = lora_A.call(x);
        using var up = lora_B.call(down);
        var delta = up.mul(scaling);
        return input.dtype == ScalarType.Float32 ? delta : delta.to_type(input.dtype);
    }

    public IDisposable AttachTo(Linear target)
    {
        var handle = target.register_forward_hook((_, input, output) => output + call(input));
        return new Detach(handle.remove);
    }

    private sealed class Detach(Action remove) : IDisposable
    {
        public void Dispose() => remove();
    }
}
