using Microsoft.OpenApi;

namespace Read.Api.Hosting;

internal static class SwaggerExtensions
{
    public static IServiceCollection AddReadSwagger(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(o =>
        {
            o.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Read API",
                Version = "v1",
                Description = "Fine-tune frozen transformers with READ (recurrent adaptation). " +
                              "Every /v1 endpoint needs `Authorization: Bearer <api key>`; /v1/admin endpoints need the admin key.",
            });
            o.AddSecurityDefinition("Bearer", new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "A tenant API key (rk_...) or, for /v1/admin, the admin key.",
            });
            o.AddSecurityRequirement(document => new OpenApiSecurityRequirement
            {
                [new OpenApiSecuritySchemeReference("Bearer", document)] = [],
            });
        });
        return services;
    }
}
