namespace Read.Domain.Backbones;

/// <summary>The backbones a deployment can fine-tune. Thread-safe; loads each backbone once, on first use.</summary>
public sealed class BackboneRegistry : IDisposable
{
    public const string TinyBackboneId = "tiny-bert";
    private const int TinySeed = 20230525;

    private readonly Dictionary<string, string> directories;
    private readonly Dictionary<string, Backbone> loaded = new(StringComparer.Ordinal);
    private readonly string? tinyDirectory;
    private readonly Lock gate = new();
    private bool disposed;

    public BackboneRegistry(BackboneOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        directories = new Dictionary<string, string>(options.Checkpoints, StringComparer.Ordinal);
        if (options.GenerateTinyBackbone && !directories.ContainsKey(TinyBackboneId))
        {
            tinyDirectory = Path.GetFullPath(Path.Combine(options.DataDirectory, "backbones", TinyBackboneId));
            directories[TinyBackboneId] = tinyDirectory;
        }
    }

    public IReadOnlyList<BackboneInfo> List()
    {
        lock (gate)
        {
            return directories.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p =>
            {
                EnsureGenerated(p.Key);
                var config = HuggingFaceCheckpoint.ReadConfig(p.Value);
                return new BackboneInfo(p.Key, config.ModelType, config.NumHiddenLayers, config.HiddenSize, HuggingFaceCheckpoint.CountParameters(p.Value));
            }).ToList();
        }
    }

    public bool Contains(string id) => directories.ContainsKey(id);

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
            backbone = HuggingFaceCheckpoint.Load(id, directory);
            loaded[id] = backbone;
            return backbone;
        }
    }

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
        if (id != TinyBackboneId || tinyDirectory is null || File.Exists(Path.Combine(tinyDirectory, HuggingFaceCheckpoint.WeightsFile)))
            return;
        TinyBertCheckpoint.Write(tinyDirectory, BertConfig.Tiny(vocabSize: 1), TinySeed);
    }
}
