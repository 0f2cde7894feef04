using Microsoft.AspNetCore.Http.HttpResults;
using Read.Api.Authentication;
using Read.Api.Problems;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Admin;

internal static class AdminApi
{
    public sealed record CreateTenantRequest(string Name);

    public sealed record CreateTenantResponse(Guid TenantId, string Name, string ApiKey, DateTime CreatedAt);

    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/admin").WithTags("Admin").RequireAuthorization(AuthPolicies.Admin);
        group.MapPost("/tenants", CreateTenant)
            .WithSummary("Create a tenant and its first API key (shown once). Needs the admin key.");
        return app;
    }

    internal static async Task<Results<Created<CreateTenantResponse>, ProblemHttpResult>> CreateTenant(
        CreateTenantRequest request, ReadDbContext db, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Name) || request.Name.Length > 200)
            return ApiProblems.BadRequest("invalid_name", "A tenant needs a name of 1 to 200 characters.");
        if (!StorableText.IsValid(request.Name))
            return ApiProblems.BadRequest("invalid_characters", "The tenant name contains a NUL character or an unpaired surrogate.");
        var created = await TenantProvisioning.CreateTenantAsync(db, request.Name.Trim(), ct: ct);
        return TypedResults.Created($"/v1/admin/tenants/{created.Tenant.Id}",
            new CreateTenantResponse(created.Tenant.Id, created.Tenant.Name, created.ApiKey, created.Tenant.CreatedAt));
    }
}
