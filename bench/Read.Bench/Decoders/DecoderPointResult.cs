namespace Read.Bench.Decoders;

/// <summary>
/// The one line a `decoders point` child prints (<c>RESULT {json}</c>, snake_case). Memory is the child's own
/// /proc/self/status: VmHWM (peak) and VmRSS (current), in MB; CPU is its TotalProcessorTime (all threads).
/// </summary>
internal sealed record DecoderPointResult(
    string Shape,
    string Method,
    // What the backbone computes in (float32, or bfloat16 with --dtype bf16).
    string Dtype,
    long Parameters,
    long DenseParameters,
    long TrainableParameters,
    int Batch,
    int MaxLength,
    int Steps,
    int TrainExamples,
    // Tokens one training step feeds (batch × real length).
    long TokensPerStep,
    int Threads,
    double LoadSeconds,
    double LoadCpuSeconds,
    // VmHWM at the end of loading: loading transient included.
    double SetupPeakRssMb,
    // VmRSS just before the first training step (after garbage collection; READ: cache built, backbone freed if so).
    double TrainStartRssMb,
    // VmHWM from the reset just before training to the end of the last step: what training itself needs, resident
    // model included (READ: the frozen backbone too unless freed).
    double TrainPeakRssMb,
    double TrainCpuSeconds,
    double TrainWallSeconds,
    // From after the matmul yardstick to the end: load, (precompute), train, (evaluate). Checkpoint generation excluded.
    double JobCpuSeconds,
    double JobWallSeconds,
    double WholeRunPeakRssMb,
    bool BackboneFreed,
    double? FinalLoss,
    // READ only: the precompute (tokenise + backbone forward + cache write) over train and validation.
    double? PrecomputeSeconds,
    double? PrecomputeCpuSeconds,
    long? PrecomputeTokens,
    double? PrecomputePeakRssMb,
    bool? CacheHit,
    double? MatmulGflops,
    double? PrecomputeGflops);
