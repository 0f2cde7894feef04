using Hangfire;
using Read.Domain.Tenants;

namespace Read.Api.Admin;

internal static class AdminServiceCollectionExtensions
{
    public static IServiceCollection AddReadAdmin(this IServiceCollection services)
    {
        services.AddOptions<QuotaOptions>().BindConfiguration(QuotaOptions.Section)
            .Validate(o => o.MaxConcurrentJobs is null or >= 0 && o.MaxStorageBytes is null or >= 0, "Read:Quotas values must be zero or more")
            .ValidateOnStart();
        return services;
    }

    /// <summary>Hangfire's dashboard at /hangfire, for the admin key only; after authentication so the filter sees the caller.</summary>
    public static IApplicationBuilder UseAdminDashboard(this IApplicationBuilder app) =>
        app.UseHangfireDashboard("/hangfire", new DashboardOptions
        {
            Authorization = [new AdminDashboardAuthorizationFilter()],
            AppPath = null,
            DashboardTitle = "Read jobs",
        });
}
