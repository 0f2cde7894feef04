using System.Security.Claims;

namespace Read.Api.Authentication;

internal static class TenantClaims
{
    public const string TenantId = "tenant_id";

    /// <summary>The calling tenant; endpoints behind the tenant policy always have one.</summary>
    public static Guid GetTenantId(this ClaimsPrincipal user) =>
        Guid.Parse(user.FindFirstValue(TenantId) ?? throw new InvalidOperationException("No tenant on this request."));
}
