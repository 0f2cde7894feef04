using System.Text.Json;
using System.Text.Json.Serialization;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Api.Adapters;
using Read.Api.Admin;
using Read.Api.Authentication;
using Read.Api.Backbones;
using Read.Api.Files;
using Read.Api.FineTuning;
using Read.Api.Health;
using Read.Api.Problems;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Hosting;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Serilog;

namespace Read.Api.Hosting;

internal static class ReadApiExtensions
{
    public static void AddReadApi(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;

        services.AddSerilog((sp, logger) => logger
            .ReadFrom.Configuration(configuration)
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Process", "api")
            .WriteTo.Console(outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext}: {Message:lj}{NewLine}{Exception}"));

        services.AddOptions<ReadOptions>().BindConfiguration(ReadOptions.Section)
            .Validate(o => o.MaxUploadBytes > 0 && o.WorkerCount > 0 && o.MaxPredictBatch > 0, "Read:MaxUploadBytes, WorkerCount and MaxPredictBatch must be positive")
            .ValidateOnStart();
        services.AddOptions<BackboneOptions>().BindConfiguration($"{ReadOptions.Section}:Backbones");
        services.AddReadBackboneDefaults();

        var dataDirectory = configuration[$"{ReadOptions.Section}:DataDirectory"] ?? new ReadOptions().DataDirectory;
        var mode = HostingMode.From(configuration, dataDirectory);
        services.AddSingleton(mode);
        services.AddReadCore(mode.Provider, mode.ConnectionString);
        services.AddSingleton<LoadedAdapterCache>();

        services.AddHangfire(hangfire =>
        {
            hangfire.SetDataCompatibilityLevel(CompatibilityLevel.Version_180)
                .UseSimpleAssemblyNameTypeSerializer()
                .UseRecommendedSerializerSettings();
            if (mode.IsEmbedded)
                hangfire.UseInMemoryStorage();
            else
                hangfire.UsePostgreSqlStorage(o => o.UseNpgsqlConnection(mode.ConnectionString));
        });
        if (mode.IsEmbedded)
        {
            // The embedded default trains in this process; with Postgres configured only Read.Worker does.
            services.AddHangfireServer((sp, server) =>
            {
                server.Queues = [FineTuneJobRunner.Queue];
                server.WorkerCount = sp.GetRequiredService<IOptions<ReadOptions>>().Value.WorkerCount;
                server.ServerName = $"read-api-embedded:{Environment.ProcessId}";
            });
        }

        services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(AuthPolicies.Tenant, p => p.RequireClaim(TenantClaims.TenantId))
            .AddPolicy(AuthPolicies.Admin, p => p.RequireRole(AuthPolicies.AdminRole));

        services.Configure<JsonOptions>(o =>
        {
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull;
            // A misspelt hyperparameter must be an error, not a silently ignored default.
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
            o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
        });
        // Bad bodies throw, so the exception handler turns them into ProblemDetails with a stable code.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddProblemDetails();
        services.AddExceptionHandler<ApiExceptionHandler>();

        services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        services.AddReadSwagger();
    }

    public static void UseReadApi(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseSerilogRequestLogging();
        app.UseSwagger();
        app.UseSwaggerUI(o => o.DocumentTitle = "Read API");
        app.UseAuthentication();
        app.UseAuthorization();

        app.MapHealthApi();
        app.MapAdminApi();
        app.MapBackbonesApi();
        app.MapFilesApi();
        app.MapFineTuningApi();
        app.MapAdaptersApi();
    }

    /// <summary>Migrates the database and, in embedded mode, provisions the development tenant and re-enqueues unfinished jobs.</summary>
    public static async Task PrepareAsync(this WebApplication app)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ReadDbContext>();
        await db.Database.MigrateAsync();
        var mode = scope.ServiceProvider.GetRequiredService<HostingMode>();
        if (mode.IsEmbedded)
            await EmbeddedStartup.RunAsync(scope.ServiceProvider);
        else
            await JobRecovery.RequeueAsync(scope.ServiceProvider, includeEnqueued: false);
    }
}
