namespace Read.Api.Authentication;

/// <summary>What a configured admin key must be: long and not a value published in docs or examples.</summary>
internal static class AdminKeyPolicy
{
    public const int MinLength = 32;

    public const string Requirement =
        "Read:AdminKey must be at least 32 characters and not an example value (generate one: openssl rand -hex 32); leave it empty to disable the admin endpoints.";

    // Placeholders (the compose file once defaulted to "change-me-admin-key"), refused even when padded to length.
    private static readonly string[] Placeholders = ["change-me", "changeme", "change_me", "some-long-secret"];

    /// <summary>True for an empty key (admin endpoints off) or a strong one.</summary>
    public static bool IsAcceptable(string? key)
    {
        if (string.IsNullOrEmpty(key))
            return true;
        if (key.Length < MinLength || key.Distinct().Count() < 8)
            return false;
        return !Placeholders.Any(p => key.Contains(p, StringComparison.OrdinalIgnoreCase));
    }
}
