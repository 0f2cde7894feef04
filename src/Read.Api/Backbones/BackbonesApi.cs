using Read.Api.Authentication;
using Read.Domain.Backbones;

namespace Read.Api.Backbones;

internal static class BackbonesApi
{
    public sealed record BackboneList(IReadOnlyList<BackboneInfo> Data);

    public static IEndpointRouteBuilder MapBackbonesApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/backbones", (BackboneRegistry registry) => TypedResults.Ok(new BackboneList(registry.List())))
            .WithTags("Backbones").RequireAuthorization(AuthPolicies.Tenant)
            .WithSummary("Backbones this deployment can fine-tune.");
        return app;
    }
}
