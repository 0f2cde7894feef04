using Read.ServiceDefaults;
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
using Read.Api.Batches;
using Read.Api.Files;
using Read.Api.FineTuning;
using Read.Api.Health;
using Read.Api.Inference;
using Read.Api.Problems;
using Read.Api.Receipts;
using Read.Api.Sweeps;
using Read.Api.Webhooks;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Hosting;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Serilog;
using Serilog.Events;

namespace Read.Api.Hosting;

internal static class ReadApiExtensions
{
    public static void AddReadApi(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;

        services.AddReadLogging(configuration, "api");

        services.AddOptions<ReadOptions>().BindConfiguration(ReadOptions.Section)
            .Validate(o => o.MaxUploadBytes > 0 && o.WorkerCount > 0 && o.MaxPredictBatch > 0 && o.MaxPredictTextChars > 0,
                "Read:MaxUploadBytes, WorkerCount, MaxPredictBatch and MaxPredictTextChars must be positive")
            .Validate(o => AdminKeyPolicy.IsAcceptable(o.AdminKey), AdminKeyPolicy.Requirement)
            .ValidateOnStart();
        services.AddOptions<BackboneOptions>().BindConfiguration($"{ReadOptions.Section}:Backbones");
        services.AddOptions<Read.Domain.FineTuning.TrainingOptions>().BindConfiguration(Read.Domain.FineTuning.TrainingOptions.Section);
        services.AddReadBackboneDefaults();

        var dataDirectory = configuration[$"{ReadOptions.Section}:DataDirectory"] ?? new ReadOptions().DataDirectory;
        var mode = HostingMode.From(configuration, dataDirectory);
        services.AddSingleton(mode);
        services.AddReadCore(mode.Provider, mode.ConnectionString);
        services.AddReadInference();
        services.AddReadWebhooks();
        services.AddHostedService<Files.OrphanChunkCollector>();
        services.AddReadAdmin();

        services.AddHangfire(hangfire =>
        {
            hangfire.UseReadSerialization();
            if (mode.IsEmbedded)
                hangfire.UseInMemoryStorage();
            else
                hangfire.UseReadPostgresStorage(mode.ConnectionString);
        });
        if (mode.IsEmbedded)
        {
            // The embedded default trains in this process; with Postgres configured only Read.Worker does.
            services.AddHangfireServer((sp, server) =>
            {
                server.Queues = [FineTuneJobRunner.Queue, Read.Domain.Batches.BatchJobRunner.Queue];
                server.WorkerCount = sp.GetRequiredService<IOptions<ReadOptions>>().Value.WorkerCount;
                server.ServerName = $"read-api-embedded:{Environment.ProcessId}";
            });
            // This process is the worker too: it sweeps lapsed leases and never-enqueued jobs as a worker does.
            services.AddHostedService<JobLeaseSweep>();
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
            o.SerializerOptions.Converters.Add(new JsonEnumConverterFactory()); // snake_case names; unknown ones list the valid names
            // The web defaults read "3" as 3; a string where a number belongs is a client bug to report, not to guess.
            o.SerializerOptions.NumberHandling = JsonNumberHandling.Strict;
        });
        // Bad bodies throw, so the exception handler turns them into ProblemDetails with a stable code.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        // Framework answers (Kestrel's 413, the JSON binder's 415, unknown routes) get a code like every other error;
        // ApiProblems sets its own code, which this leaves alone.
        services.AddProblemDetails(o => o.CustomizeProblemDetails = c =>
        {
            if (c.ProblemDetails.Extensions.ContainsKey("code"))
                return;
            var (code, detail) = FrameworkProblemCodes.For(c.ProblemDetails.Status ?? c.HttpContext.Response.StatusCode);
            c.ProblemDetails.Extensions["code"] = code;
            c.ProblemDetails.Detail ??= detail;
        });
        services.AddExceptionHandler<ApiExceptionHandler>();

        services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        services.AddReadSwagger();
    }

    public static void UseReadApi(this WebApplication app)
    {
        // Outermost, so it logs the status the client got: inside the exception handler it saw the exception and
        // logged every request that threw (a bad body included) as a 500.
        app.UseSerilogRequestLogging(o =>
        {
            o.GetLevel = (context, _, exception) =>
                exception is not null || context.Response.StatusCode >= 500 ? LogEventLevel.Error : LogEventLevel.Information;
            // This host's logger, not the static Log.Logger, which another host in the process (a worker in tests) may own.
            o.Logger = app.Services.GetService<Serilog.ILogger>();
        });
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseSwagger();
        app.UseSwaggerUI(o => o.DocumentTitle = "Read API");
        app.UseAuthentication();
        app.UseReadRateLimits();
        app.UseAuthorization();
        app.UseReadPredictAdmission();
        app.UseAdminDashboard();

        app.MapHealthApi();
        app.MapAdminApi();
        app.MapCachesApi();
        app.MapBackbonesApi();
        app.MapFilesApi();
        app.MapFineTuningApi();
        app.MapAdaptersApi();
        app.MapBatchesApi();
        app.MapWebhooksApi();
        app.MapReceiptsApi();
        app.MapSweepsApi();
        app.MapReadMetrics();
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
        await BatchRecovery.RequeueAsync(scope.ServiceProvider, embedded: mode.IsEmbedded);
    }
}
