namespace Read.Bench.Methods;

/// <summary>
/// The one machine-readable line a `method` run prints (as <c>RESULT {json}</c>, snake_case keys). Quality fields are
/// null with <c>--random-config</c>; precompute_seconds is null for methods without a precompute stage.
/// </summary>
internal sealed record MethodResultLine(
    string Method,
    string Dataset,
    string Backbone,
    int Epochs,
    int BatchSize,
    int MaxLength,
    double LearningRate,
    int Seed,
    int TrainExamples,
    int TestExamples,
    long TrainableParameters,
    long AdapterBytes,
    double? TestAccuracy,
    double? TestF1,
    double? TestMacroF1,
    // From the start of the command's action (after runtime start-up) to just before this line: dataset loading,
    // backbone loading, training, evaluation, measuring the adapter size.
    double WallSeconds,
    // Process TotalProcessorTime over the same interval (all threads).
    double CpuSeconds,
    // Peak resident memory of the whole run: VmHWM, taken before and after its reset (see train_peak_rss_mb).
    double PeakRssMb,
    // VmHWM from just after the backbone was loaded (and garbage collected) to the end: training and evaluation,
    // resident model included, without the loading transient. Null where VmHWM cannot be reset.
    double? TrainPeakRssMb,
    // VmHWM up to the end of loading the backbone (dataset, checkpoint generation or import, loading transient); null
    // only in lines from before this field was measured for every run.
    double? SetupPeakRssMb,
    // --random-config: whether this run generated the checkpoint (it is reused by later runs).
    bool CheckpointGenerated,
    double? PrecomputeSeconds,
    double TrainSeconds,
    double EvaluateSeconds,
    int Steps,
    IReadOnlyList<double> EpochLosses,
    int Threads,
    string? RandomConfig,
    string? Cell,
    int? R,
    string? Pooling,
    int? LoraR,
    double? LoraAlpha,
    IReadOnlyList<string>? LoraTargets,
    int? AdapterSize);
