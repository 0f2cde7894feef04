using Read.Domain.Backbones;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Bench.Precision;

/// <summary>
/// int8 weight-only storage of a loaded backbone's projections, as the service would hold it, measured rather than
/// assumed: every nn.Linear weight is replaced by an int8 tensor with one float32 scale per output channel (symmetric,
/// scale = max |w| / 127 over the row, round to nearest), quantized from the float32 checkpoint weights. Only the int8
/// tensor and the scales stay resident; a forward pre-hook dequantizes the weight to float32 for the call and a forward
/// hook frees it again (the architecture's projection helper takes the module's own path when the weight's dtype is
/// the activations', so the hooks run). Embeddings and norms keep the backbone's storage dtype (bf16 here); biases are
/// widened to float32 once (a few KB). TorchSharp 0.107 has no int8 matmul on the CPU (a QInt8 tensor cannot enter
/// nn.functional.linear, there is no torch.ao dynamic-quantized Linear), so dequantize-per-call is the only route.
/// </summary>
internal sealed class Int8WeightOnly : IDisposable
{
    private readonly List<Tensor> resident = [];
    private readonly List<Action> removeHooks = [];

    private Int8WeightOnly()
    {
    }

    /// <summary>Bytes of the int8 weights and their scales (the rest of the model is counted from its parameters).</summary>
    public long Bytes => resident.Sum(t => t.numel() * t.element_size());

    public int Projections { get; private set; }

    /// <param name="target">The backbone to quantize in place (storage bf16, compute float32).</param>
    /// <param name="source">The same checkpoint in float32: the weights quantized, module names matching.</param>
    public static Int8WeightOnly Apply(Backbone target, Backbone source)
    {
        var originals = source.Model.named_modules().Where(m => m.module is Linear).ToDictionary(m => m.name, m => (Linear)m.module, StringComparer.Ordinal);
        var int8 = new Int8WeightOnly();
        using var noGrad = no_grad();
        foreach (var (name, module) in target.Model.named_modules().ToList())
        {
            if (module is not Linear linear)
                continue;
            Tensor quantized, scale;
            using (NewDisposeScope())
            {
                var original = originals[name].weight.to(target.Device.Torch);
                scale = (original.abs().amax([1], keepdim: true).clamp_min(1e-12) / 127.0).DetachFromDisposeScope(); // (out, 1) float32
                quantized = (original / scale).round().clamp(-127, 127).to_type(ScalarType.Int8).DetachFromDisposeScope();
            }

            int8.resident.Add(quantized);
            int8.resident.Add(scale);
            if (linear.bias is { } bias)
                linear.bias = nn.Parameter(bias.to_type(ScalarType.Float32), requires_grad: false);
            linear.weight = Placeholder(target.Device.Torch); // frees the bf16 weight
            var pre = linear.register_forward_pre_hook((_, x) =>
            {
                // Dequantized into the activations' dtype for this call only; the setter frees the placeholder.
                var weight = quantized.to_type(x.dtype).mul_(scale);
                linear.weight = nn.Parameter(weight, requires_grad: false);
                return x;
            });
            var post = linear.register_forward_hook((_, _, y) =>
            {
                linear.weight = Placeholder(target.Device.Torch); // frees the dequantized weight
                return y;
            });
            int8.removeHooks.Add(pre.remove);
            int8.removeHooks.Add(post.remove);
            int8.Projections++;
        }

        return int8;
    }

    /// <summary>An empty float32 weight: what the projection helper checks the dtype of before calling the module.</summary>
    private static Parameter Placeholder(Device device) => nn.Parameter(empty(0, dtype: ScalarType.Float32, device: device), requires_grad: false);

    public void Dispose()
    {
        foreach (var remove in removeHooks)
            remove();
        foreach (var tensor in resident)
            tensor.Dispose();
    }
}
