using Read.Bench.Decoders;

namespace Read.Bench.Streamed;

/// <summary>Shapes for the layer-streamed benchmark: Llama-2's published configs, and a small one for the memory test.</summary>
internal static class StreamedShapes
{
    public static readonly IReadOnlyList<DecoderShape> Known =
    [
        // meta-llama/Llama-2-13b-hf config.json: 13.0B parameters, 26 GB in bf16.
        new("llama-2-13b", "llama", 5120, 40, 40, 40, 13824, 32000, false, 10000, 1e-5, 4096, null),
        // Llama-2-13B's layers (width, heads, MLP: the same per-layer weights, time and memory), 6 of its 40, tied
        // embeddings (no lm_head): 2.07B parameters, 4.1 GB in bf16. For when the disk cannot hold the 26 GB of the full shape.
        new("llama-2-13b-6l", "llama", 5120, 6, 40, 40, 13824, 32000, true, 10000, 1e-5, 4096, null),
        // meta-llama/Llama-2-7b-hf config.json: 6.7B parameters, 13.5 GB in bf16.
        new("llama-2-7b", "llama", 4096, 32, 32, 32, 11008, 32000, false, 10000, 1e-5, 4096, null),
        // The peak-memory test's shape (tests/Read.Domain.Tests/FineTuning/StreamedPrecomputeMemoryTests.cs): 0.55B
        // parameters and an lm_head, 2.5 GB written as F32 in seconds; one layer is 0.24 GB.
        new("stream-test", "llama", 2048, 8, 16, 4, 8192, 32000, false, 10000, 1e-5, 4096, null),
    ];

    public static DecoderShape Find(string name) =>
        Known.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase)) ?? DecoderShape.Find(name);
}
