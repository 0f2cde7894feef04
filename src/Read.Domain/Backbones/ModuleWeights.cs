using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>Copies between module parameters and safetensors dictionaries, naming any tensor that does not fit.</summary>
internal static class ModuleWeights
{
    public static float[] ToArray(Tensor tensor)
    {
        using var cpu = tensor.detach().cpu().to_type(ScalarType.Float32).contiguous();
        return cpu.data<float>().ToArray();
    }

    public static Dictionary<string, SafeTensor> StateOf(nn.Module module, string prefix = "") =>
        module.state_dict().ToDictionary(p => prefix + p.Key, p => new SafeTensor(p.Value.shape.ToArray(), ToArray(p.Value)), StringComparer.Ordinal);

    /// <summary>
    /// Fills every parameter of <paramref name="module"/> from <paramref name="tensors"/>; a key may carry any of
    /// <paramref name="prefixes"/>. Unknown keys are ignored; missing or misshaped ones throw naming the tensor.
    /// </summary>
    public static void Load(nn.Module module, IReadOnlyDictionary<string, SafeTensor> tensors, string source, params string[] prefixes)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in module.state_dict())
        {
            var found = prefixes.Select(p => p + name).FirstOrDefault(tensors.ContainsKey)
                ?? throw new InvalidDataException($"{source} is missing tensor '{prefixes[0]}{name}'.");
            var tensor = tensors[found];
            var expected = parameter.shape;
            if (!expected.SequenceEqual(tensor.Shape))
                throw new InvalidDataException($"{source}: tensor '{found}' has shape {tensor.ShapeText}, expected [{string.Join(", ", expected)}].");
            using var source32 = torch.tensor(tensor.Data, expected, ScalarType.Float32, device: CPU);
            parameter.copy_(source32);
        }
    }

    /// <summary>
    /// Fills every parameter and buffer of <paramref name="module"/> from the checkpoint, one tensor at a time; a key may
    /// carry any of <paramref name="prefixes"/>. Unused checkpoint tensors are ignored; missing or misshaped ones throw
    /// naming the tensor. Returns the bytes read from disk.
    /// </summary>
    public static long Load(nn.Module module, CheckpointWeights weights, params string[] prefixes)
    {
        long bytes = 0;
        foreach (var (name, parameter) in module.state_dict())
        {
            var found = prefixes.Select(p => p + name).FirstOrDefault(weights.Contains)
                ?? throw new InvalidDataException($"{weights.Description} is missing tensor '{prefixes[0]}{name}'.");
            bytes += weights.CopyInto(found, parameter);
        }

        return bytes;
    }
}
