using System.Net;
using Microsoft.Extensions.Options;

namespace Read.Api.Tests;

/// <summary>Start-up checks on secrets: no weak admin key is accepted, and no full API key reaches the log.</summary>
[Collection(ServiceCollection.Name)]
public sealed class StartupSecurityTests : IDisposable
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-security-").FullName;

    [Theory]
    [InlineData("change-me-admin-key")]
    [InlineData("short-but-random-9f8e7d")]
    [InlineData("change-me-admin-key-change-me-admin-key")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public void Start_WeakAdminKey_RefusesWithAClearMessage(string adminKey)
    {
        using var app = new ReadApplication(_dataDirectory, postgres: null, new Dictionary<string, string?> { ["Read:AdminKey"] = adminKey });
        app.UseKestrel(0);
        var error = Assert.ThrowsAny<Exception>(app.StartServer);
        var validation = Flatten(error).OfType<OptionsValidationException>().FirstOrDefault();
        Assert.True(validation is not null, error.ToString());
        Assert.Contains("Read:AdminKey must be at least 32 characters", validation.Message);
    }

    [Fact]
    public async Task Start_EmptyAdminKey_StartsWithAdminEndpointsClosed()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?> { ["Read:AdminKey"] = "" });
        using var client = app.CreateClient(ReadApplication.AdminKey);
        var response = await client.PostAsync("/v1/admin/tenants", new StringContent("{\"name\":\"x\"}", System.Text.Encoding.UTF8, "application/json"));
        await response.AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
    }

    [Fact]
    public async Task Start_EmbeddedWithGeneratedKey_LogsOnlyAPrefixAndTheKeyFilePath()
    {
        await using var app = ReadApplication.Start(_dataDirectory);
        var keyFile = Path.GetFullPath(Path.Combine(_dataDirectory, "development-api-key"));
        var key = (await File.ReadAllTextAsync(keyFile)).Trim();
        using var client = app.CreateClient(key);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/files")).StatusCode);

        var messages = app.Logs.Messages;
        Assert.DoesNotContain(messages, m => m.Contains(key, StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains(key[..8] + "…", StringComparison.Ordinal) && m.Contains(keyFile, StringComparison.Ordinal));
    }

    private static IEnumerable<Exception> Flatten(Exception e)
    {
        yield return e;
        var inner = e is AggregateException a ? a.InnerExceptions : e.InnerException is { } i ? [i] : [];
        foreach (var x in inner.SelectMany(Flatten))
            yield return x;
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { }
    }
}
