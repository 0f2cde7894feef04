namespace Read.Api.Authentication;

internal static class AuthPolicies
{
    public const string Tenant = "tenant";
    public const string Admin = "admin";
    public const string AdminRole = "read-admin";
}
