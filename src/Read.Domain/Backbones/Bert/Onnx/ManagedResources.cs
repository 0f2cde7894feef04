using System.Buffers.Binary;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Read.Domain.Backbones.Bert.Onnx;

/// <summary>
/// Reads embedded resources of a .NET assembly from its PE file with System.Reflection.Metadata, without loading
/// the assembly (it targets other frameworks and drags in dependencies we do not want).
/// </summary>
internal static class ManagedResources
{
    /// <summary>Names of the embedded (not linked) manifest resources.</summary>
    public static IReadOnlyList<string> Names(string assemblyPath)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        return metadata.ManifestResources
            .Select(metadata.GetManifestResource)
            .Where(r => r.Implementation.IsNil)
            .Select(r => metadata.GetString(r.Name))
            .ToList();
    }

    /// <summary>The bytes of the embedded resource called <paramref name="name"/>; throws naming it when absent.</summary>
    public static byte[] Read(string assemblyPath, string name)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var metadata = pe.GetMetadataReader();
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            if (!resource.Implementation.IsNil || metadata.GetString(resource.Name) != name)
                continue;
            var directory = pe.PEHeaders.CorHeader?.ResourcesDirectory
                ?? throw new InvalidDataException($"{assemblyPath} has no CLR header.");
            // Each embedded resource is a 4-byte little-endian length followed by the data, at its offset in the resources directory.
            var block = pe.GetSectionData(directory.RelativeVirtualAddress);
            var start = checked((int)resource.Offset);
            var length = BinaryPrimitives.ReadInt32LittleEndian(block.GetReader(start, 4).ReadBytes(4));
            if (length < 0 || start + 4L + length > directory.Size)
                throw new InvalidDataException($"{assemblyPath}: resource '{name}' runs past the resources directory.");
            return block.GetReader(start + 4, length).ReadBytes(length);
        }

        throw new InvalidDataException($"{assemblyPath} has no embedded resource '{name}' (it has: {string.Join(", ", Names(assemblyPath))}).");
    }
}
