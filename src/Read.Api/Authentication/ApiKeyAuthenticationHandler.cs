using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Problems;
using Read.Domain.Configuration;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Authentication;

/// <summary>
/// `Authorization: Bearer &lt;key&gt;`: the admin key from configuration, or a tenant key looked up by its SHA-256 hash.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory loggerFactory,
    UrlEncoder encoder,
    ReadDbContext db,
    IOptions<ReadOptions> readOptions) : AuthenticationHandler<AuthenticationSchemeOptions>(options, loggerFactory, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (string.IsNullOrEmpty(header))
            return AuthenticateResult.NoResult();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return AuthenticateResult.Fail("The Authorization header must be 'Bearer <api key>'.");
        var key = header["Bearer ".Length..].Trim();

        var adminKey = readOptions.Value.AdminKey;
        if (!string.IsNullOrEmpty(adminKey) &&
            CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes(adminKey)))
        {
            return Success(new Claim(ClaimTypes.Role, AuthPolicies.AdminRole), new Claim(ClaimTypes.Name, "admin"));
        }

        var hash = ApiKeys.Hash(key);
        var tenantId = await db.ApiKeys.AsNoTracking()
            .Where(k => k.KeyHash == hash && k.RevokedAt == null)
            .Select(k => (Guid?)k.TenantId)
            .FirstOrDefaultAsync(Context.RequestAborted);
        return tenantId is { } id
            ? Success(new Claim(TenantClaims.TenantId, id.ToString()), new Claim(ClaimTypes.Name, ApiKeys.DisplayPrefix(key)))
            : AuthenticateResult.Fail("Unknown or revoked API key.");
    }

    private AuthenticateResult Success(params Claim[] claims) =>
        AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(new ClaimsIdentity(claims, SchemeName)), SchemeName));

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var result = await HandleAuthenticateOnceSafeAsync();
        var (code, detail) = result.None
            ? ("missing_api_key", "Send 'Authorization: Bearer <api key>'.")
            : ("invalid_api_key", result.Failure?.Message ?? "Invalid API key.");
        Response.Headers.WWWAuthenticate = "Bearer";
        await ApiProblems.Write(Context, StatusCodes.Status401Unauthorized, code, "Unauthorized", detail);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        ApiProblems.Write(Context, StatusCodes.Status403Forbidden, "forbidden", "Forbidden", "This key may not use this endpoint.");
}
