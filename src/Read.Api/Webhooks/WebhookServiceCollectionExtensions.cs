namespace Read.Api.Webhooks;

internal static class WebhookServiceCollectionExtensions
{
    /// <summary>Webhook options and the dispatcher that drains the outbox (every API process runs one; they share work safely).</summary>
    public static IServiceCollection AddReadWebhooks(this IServiceCollection services)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section)
            .Validate(o => o.PollInterval > TimeSpan.Zero && o.RetryBaseDelay > TimeSpan.Zero && o.MaxAttempts >= 1
                           && o.AttemptTimeout > TimeSpan.Zero && o.MaxEndpointsPerTenant >= 1,
                "Read:Webhooks: PollInterval, RetryBaseDelay, AttemptTimeout must be positive and MaxAttempts, MaxEndpointsPerTenant at least 1")
            .ValidateOnStart();
        services.AddHostedService<WebhookDispatcher>();
        return services;
    }
}
