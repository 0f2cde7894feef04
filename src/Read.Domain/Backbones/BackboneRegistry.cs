using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Bert.Onnx;
using Read.Domain.FineTuning;

namespace Read.Domain.Backbones;

/// <summary>The backbones a deployment can fine-tune. Thread-safe; loads each backbone once, on first use.</summary>
public sealed class BackboneRegistry : IDisposable
{
    public const string TinyBackboneId = "tiny-bert";

    /// <summary>The backbone jobs use when they name none: all-MiniLM-L6-v2, imported from its bundled ONNX export.</summary>
    public const string DefaultBackboneId = BundledBackbones.MiniLmId;
    private const int TinySeed = 20230525;

    private readonly Dictionary<string, string> directories;
    private readonly Dictionary<string, BackboneDtype> dtypes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Backbone> loaded = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BackboneInfo> infos = new(StringComparer.Ordinal);
    private readonly string? tinyDirectory;
    private readonly Dictionary<string, string> bundledDirectories = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private bool disposed;

    private readonly long memoryBudgetBytes;
    private readonly ReadDevice device;
    private readonly bool cpuComputesBf16;

    /// <param name="training">Its memory budget decides which backbones load resident and which stream (all resident when null).</param>
    /// <param name="device">Where every backbone is loaded and runs (<c>Read:Device</c>); the CPU when null.</param>
    public BackboneRegistry(BackboneOptions options, TrainingOptions? training = null, ReadDevice? device = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        memoryBudgetBytes = training?.EffectiveMemoryBudgetBytes ?? long.MaxValue;
        this.device = device ?? ReadDevice.Cpu;
        cpuComputesBf16 = options.CpuBf16Compute ?? BackbonePrecision.CpuHasNativeBf16;
        directories = new Dictionary<string, string>(options.Checkpoints, StringComparer.Ordinal);

        if (options.GenerateTinyBackbone && !directories.ContainsKey(TinyBackboneId))
        {
            tinyDirectory = Path.GetFullPath(Path.Combine(options.DataDirectory, "backbones", TinyBackboneId));
            directories[TinyBackboneId] = tinyDirectory;
        }

        if (options.ImportBundledBackbones)
        {
            foreach (var bundled in BundledBackbones.All.Where(b => !directories.ContainsKey(b.Id)))
            {
                var directory = Path.GetFullPath(Path.Combine(options.DataDirectory, "backbones", bundled.Id));
                bundledDirectories[bundled.Id] = directory;
                directories[bundled.Id] = directory;
            }
        }

        // After the built-in ones are registered, so the bundled MiniLM can be kept in bf16 too.
        foreach (var (id, text) in options.Dtypes)
        {
            if (!directories.ContainsKey(id))
                throw new ArgumentException($"Backbone dtype given for '{id}', which is not a registered checkpoint.", nameof(options));
            dtypes[id] = BackboneDtypes.Parse(text)
                ?? throw new ArgumentException($"Backbone '{id}': dtype '{text}' is not one of float32, bfloat16, float16.", nameof(options));
        }
    }

    public IReadOnlyList<BackboneInfo> List()
    {
        lock (gate)
            return directories.Keys.Order(StringComparer.Ordinal).Select(InfoLocked).ToList();
    }

    /// <summary>One backbone's description, read from its checkpoint once (importing it if needed) and then remembered.</summary>
    public BackboneInfo Info(string id)
    {
        lock (gate)
        {
            if (!directories.ContainsKey(id))
                throw new KeyNotFoundException($"Unknown backbone '{id}'.");
            return InfoLocked(id);
        }
    }

    private BackboneInfo InfoLocked(string id)
    {
        if (infos.TryGetValue(id, out var info))
            return info;
        EnsureGenerated(id);
        var directory = directories[id];
        var description = HuggingFaceCheckpoint.Describe(directory);
        info = new BackboneInfo(id, description.ModelType, description.Shape.NumHiddenLayers, description.Shape.HiddenSize,
            description.Parameters, description.Shape.MaxPositionEmbeddings, DtypeOf(id).Name());
        infos[id] = info;
        return info;
    }

    public bool Contains(string id) => directories.ContainsKey(id);

    /// <summary>Where the backbones run.</summary>
    public ReadDevice Device => device;

    public Backbone Get(string id)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (loaded.TryGetValue(id, out var backbone))
                return backbone;
            if (!directories.TryGetValue(id, out var directory))
                throw new KeyNotFoundException($"Unknown backbone '{id}'.");
            EnsureGenerated(id);
            // What is resident counts: the weights in their storage dtype (a projection widens its weight only for the
            // call). Over the budget they are never loaded: precompute streams them one layer at a time.
            var storage = DtypeOf(id);
            var compute = BackbonePrecision.ComputeDtype(storage, device, cpuComputesBf16);
            var weightBytes = HuggingFaceCheckpoint.Describe(directory).Parameters * storage.Size();
            backbone = PrecomputeSelection.Fits(weightBytes, memoryBudgetBytes)
                ? HuggingFaceCheckpoint.Load(id, directory, storage, device, compute)
                : HuggingFaceCheckpoint.LoadStreamed(id, directory, storage, device, compute);
            loaded[id] = backbone;
            return backbone;
        }
    }

    private BackboneDtype DtypeOf(string id) => dtypes.GetValueOrDefault(id, BackbonePrecision.DefaultStorage(device));

    public void Dispose()
    {
        lock (gate)
        {
            disposed = true;
            foreach (var backbone in loaded.Values)
                backbone.Dispose();
            loaded.Clear();
        }
    }

    private void EnsureGenerated(string id)
    {
        if (bundledDirectories.TryGetValue(id, out var bundled))
        {
            // The importer writes to a temporary directory and renames it, so an existing directory is complete.
            if (!File.Exists(Path.Combine(bundled, HuggingFaceCheckpoint.WeightsFile)))
                BundledBackbones.Import(id, bundled);
            return;
        }

        if (id != TinyBackboneId || tinyDirectory is null || File.Exists(Path.Combine(tinyDirectory, HuggingFaceCheckpoint.WeightsFile)))
            return;
        TinyBertCheckpoint.Write(tinyDirectory, BertConfig.Tiny(vocabSize: 1), TinySeed);
    }
}
