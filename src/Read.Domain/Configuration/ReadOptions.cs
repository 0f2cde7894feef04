namespace Read.Domain.Configuration;

/// <summary>Service-wide settings (configuration section "Read").</summary>
public sealed class ReadOptions
{
    public const string Section = "Read";

    /// <summary>Root for worker-local state: the SQLite file (embedded), activation caches, generated backbones.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Key that authorises the admin endpoints (creating tenants). Empty disables them.</summary>
    public string? AdminKey { get; set; }

    /// <summary>Embedded mode: API key of the development tenant; a random one is generated and printed when empty.</summary>
    public string? DevelopmentApiKey { get; set; }

    /// <summary>Largest accepted dataset upload, in bytes (larger answers 413).</summary>
    public long MaxUploadBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Concurrent fine-tuning jobs per worker process. Training uses every core, so one is the sensible default.</summary>
    public int WorkerCount { get; set; } = 1;

    /// <summary>Largest number of inputs accepted by one predict request.</summary>
    public int MaxPredictBatch { get; set; } = 256;

    /// <summary>Longest text (and, separately, text_pair) of one predict input, in characters (longer answers 400 text_too_long).</summary>
    public int MaxPredictTextChars { get; set; } = 20_000;

    /// <summary>How often a running job checks whether the user cancelled it.</summary>
    public TimeSpan CancellationPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a worker's claim on a running job lasts without renewal (renewed every third of it). A duplicate
    /// delivery meets a live lease and exits; a job whose worker died is claimable again once the lease lapses. A run
    /// that cannot renew (its database unreachable) stops a sixth of it before the expiry, so it never trains beside the
    /// worker that takes the job next.
    /// </summary>
    public TimeSpan JobLeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Where backbones, cache batches, side networks and inference run: auto (CUDA when TorchSharp reports it), cpu,
    /// cuda or cuda:N (one worker process per GPU). Checked at start-up (<see cref="Backbones.ReadDevice"/>).
    /// </summary>
    public string Device { get; set; } = Backbones.ReadDevice.Auto;

    /// <summary>
    /// How often a worker looks for running jobs whose lease lapsed (their worker died) and queued jobs that never reached
    /// Hangfire, and enqueues them again: a dead worker's job is fetched again within lease + sweep interval + Hangfire's
    /// queue poll (30 + 15 + 1 = 46 s by default; docs/decisions/014-checkpoints-leases.md).
    /// </summary>
    public TimeSpan JobSweepInterval { get; set; } = TimeSpan.FromSeconds(15);

    public FineTuning.TrainingOptions Training { get; set; } = new();

    public string ActivationCacheDirectory =>
        string.IsNullOrWhiteSpace(Training.CacheDirectory) ? Path.Combine(DataDirectory, "activation-cache") : Training.CacheDirectory;
}
