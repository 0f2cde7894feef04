using Hangfire.Dashboard;
using Read.Api.Authentication;

namespace Read.Api.Admin;

/// <summary>The Hangfire dashboard answers the admin key only (sent as a Bearer header, like every admin call).</summary>
internal sealed class AdminDashboardAuthorizationFilter : IDashboardAuthorizationFilter
{
    public bool Authorize(DashboardContext context) => context.GetHttpContext().User.IsInRole(AuthPolicies.AdminRole);
}
