using Read.Domain.Files;

namespace Read.Api.Files;

/// <summary>A dataset file as the API shows it (never its content).</summary>
internal sealed record FileResponse(
    string Id, string Object, string Filename, string Purpose, long Bytes, string Sha256,
    int ExampleCount, IReadOnlyList<string> Labels, bool HasTextPairs, DateTime CreatedAt)
{
    public static FileResponse From(DatasetFile f) =>
        new(f.Id, "file", f.FileName, f.Purpose, f.Bytes, f.Sha256, f.ExampleCount, f.Labels, f.HasTextPairs, f.CreatedAt);
}
