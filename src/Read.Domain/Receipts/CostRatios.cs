using Read.Domain.Backbones;

namespace Read.Domain.Receipts;

/// <summary>
/// How much more CPU time and peak memory LoRA and full fine-tuning took than READ on the same job, in our recorded
/// benchmark runs. Receipts multiply a job's measured READ cost by these to estimate the alternatives.
/// </summary>
public static class CostRatios
{
    public sealed record Ratios(double LoraCpu, double FullCpu, double LoraRss, double FullRss, string Source);

    // docs/benchmarks/compare.md (all-MiniLM-L6-v2, `dotnet run -c Release --project bench/Read.Bench -- compare`):
    // rows read / lora / full, columns "CPU s" and "peak RSS MB", per dataset (amazon, imdb, yelp).
    private static readonly (double ReadCpu, double LoraCpu, double FullCpu, double ReadRss, double LoraRss, double FullRss)[] Encoder =
    [
        (15.67, 120, 213, 558, 724, 1264),
        (20.35, 227, 300, 661, 1149, 1608),
        (14.55, 121, 204, 578, 694, 1238),
    ];

    /// <summary>Encoders: the mean over compare.md's three datasets of lora/read and full/read ("CPU s", "peak RSS MB").</summary>
    public static readonly Ratios Encoders = new(
        Encoder.Average(r => r.LoraCpu / r.ReadCpu), Encoder.Average(r => r.FullCpu / r.ReadCpu),
        Encoder.Average(r => r.LoraRss / r.ReadRss), Encoder.Average(r => r.FullRss / r.ReadRss),
        "docs/benchmarks/compare.md: mean over amazon, imdb, yelp of the lora/read and full/read ratios of 'CPU s' and 'peak RSS MB' (all-MiniLM-L6-v2, READ with precompute)");

    /// <summary>
    /// Decoders: docs/benchmarks/decoders.md, qwen2.5-0.5b shape (the one shape where full fine-tuning fit), "CPU s / job"
    /// (read 74.68, lora 96.86, full 256) and "training peak RSS MB" (read 4674, lora 3707, full 12748), READ with the backbone resident.
    /// </summary>
    public static readonly Ratios Decoders = new(
        96.86 / 74.68, 256 / 74.68, 3707.0 / 4674, 12748.0 / 4674,
        "docs/benchmarks/decoders.md: qwen2.5-0.5b shape, lora/read and full/read of 'CPU s / job' and 'training peak RSS MB' (READ with the backbone resident, precompute included)");

    public static Ratios For(BackboneArchitecture architecture) =>
        architecture == BackboneArchitecture.Bert ? Encoders : Decoders;
}
