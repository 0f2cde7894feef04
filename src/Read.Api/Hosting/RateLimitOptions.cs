namespace Read.Api.Hosting;

/// <summary>
/// Request rate limits (configuration section "Read:RateLimits"): per tenant on predict, uploads and job creation, per
/// client IP on failed authentication. Fixed windows; a rejected request answers 429 with Retry-After.
/// </summary>
internal sealed class RateLimitOptions
{
    public const string Section = "Read:RateLimits";

    /// <summary>Off: no request is limited (the inference queue still bounds predict).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Predict requests (both endpoints together) per tenant.</summary>
    public RateLimitRule Predict { get; set; } = new() { PermitLimit = 600, WindowSeconds = 10 };

    /// <summary>File uploads per tenant.</summary>
    public RateLimitRule Uploads { get; set; } = new() { PermitLimit = 60, WindowSeconds = 60 };

    /// <summary>Fine-tuning job creations per tenant.</summary>
    public RateLimitRule Jobs { get; set; } = new() { PermitLimit = 60, WindowSeconds = 60 };

    /// <summary>Requests with credentials that did not authenticate, per client IP (slows key guessing).</summary>
    public RateLimitRule FailedAuthentication { get; set; } = new() { PermitLimit = 60, WindowSeconds = 60 };

    /// <summary>Overrides by tenant id (the GUID as the admin API shows it).</summary>
    public Dictionary<string, TenantRateLimits> Tenants { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public bool IsValid() =>
        new[] { Predict, Uploads, Jobs, FailedAuthentication }.Concat(Tenants.Values.SelectMany(t => new[] { t.Predict, t.Uploads, t.Jobs }).OfType<RateLimitRule>())
            .All(r => r.PermitLimit > 0 && r.WindowSeconds > 0);
}

/// <summary>At most <see cref="PermitLimit"/> requests per <see cref="WindowSeconds"/>.</summary>
internal sealed class RateLimitRule
{
    public int PermitLimit { get; set; }

    public int WindowSeconds { get; set; }
}

/// <summary>One tenant's limits; a rule left out keeps the default.</summary>
internal sealed class TenantRateLimits
{
    public RateLimitRule? Predict { get; set; }

    public RateLimitRule? Uploads { get; set; }

    public RateLimitRule? Jobs { get; set; }
}
