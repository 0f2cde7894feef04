using System.Security.Cryptography;
using System.Text;

namespace Read.Domain.Tenants;

/// <summary>Generates API keys and hashes them for storage and lookup.</summary>
public static class ApiKeys
{
    private const string Prefix = "rk_";

    public static string Generate() =>
        Prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));

    public static string Hash(string key) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    public static string DisplayPrefix(string key) => key.Length <= 10 ? key : key[..10];
}
