namespace Read.Api.Webhooks;

/// <summary>Webhook delivery settings (configuration section "Read:Webhooks").</summary>
public sealed class WebhookOptions
{
    public const string Section = "Read:Webhooks";

    /// <summary>How often the dispatcher looks for new job state changes and due retries.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Delay before the first retry; each further retry waits twice as long as the one before.</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Attempts per delivery, the first included; 8 at the default base spans about 21 minutes.</summary>
    public int MaxAttempts { get; set; } = 8;

    /// <summary>How long one attempt may take before it counts as failed.</summary>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// SSRF guard: off by default, so endpoints on loopback, private, link-local (cloud metadata), CGNAT, multicast or
    /// unspecified addresses are refused at registration and again at connect time (after DNS). Turn on for development.
    /// </summary>
    public bool AllowPrivateNetworks { get; set; }

    /// <summary>Endpoints one tenant may register.</summary>
    public int MaxEndpointsPerTenant { get; set; } = 10;
}
