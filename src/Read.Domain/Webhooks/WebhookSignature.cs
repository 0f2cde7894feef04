using System.Security.Cryptography;
using System.Text;

namespace Read.Domain.Webhooks;

/// <summary>
/// The signing scheme (Stripe's shape): HMAC-SHA256, keyed with the endpoint secret's UTF-8 bytes, over
/// "{timestamp}.{body}", sent as "v1=&lt;lowercase hex&gt;" in <see cref="SignatureHeader"/> next to the Unix-seconds
/// <see cref="TimestampHeader"/>. Receivers recompute it and reject stale timestamps to stop replays.
/// </summary>
public static class WebhookSignature
{
    public const string IdHeader = "Read-Webhook-Id";
    public const string TimestampHeader = "Read-Webhook-Timestamp";
    public const string SignatureHeader = "Read-Webhook-Signature";
    public const string SecretPrefix = "whsec_";

    public static string GenerateSecret() => SecretPrefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static string Sign(string secret, long timestamp, string body) =>
        "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{body}")));
}
