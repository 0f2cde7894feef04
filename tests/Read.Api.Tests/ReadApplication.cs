using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace Read.Api.Tests;

/// <summary>
/// The real API on Kestrel (real HTTP on a loopback port). Postgres mode when a connection string is given, else the
/// embedded default (SQLite + in-memory Hangfire + in-process server) under <see cref="DataDirectory"/>.
/// </summary>
internal sealed class ReadApplication(string dataDirectory, string? postgres = null, IDictionary<string, string?>? settings = null)
    : WebApplicationFactory<Program>
{
    // Long enough for the start-up check (AdminKeyPolicy), which refuses short or placeholder keys.
    public const string AdminKey = "test-admin-key-0123456789abcdef0123456789";

    public string DataDirectory { get; } = dataDirectory;

    /// <summary>Every Serilog event the API wrote (request logs included).</summary>
    public CapturedLogs Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        builder.UseSetting("Read:DataDirectory", DataDirectory);
        builder.UseSetting("Read:AdminKey", AdminKey);
        builder.UseSetting("ConnectionStrings:Postgres", postgres ?? "");
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
            builder.UseSetting(key, value);
        builder.ConfigureServices(services => services.AddSingleton<ILogEventSink>(Logs));
    }

    public static ReadApplication Start(string dataDirectory, string? postgres = null, IDictionary<string, string?>? settings = null)
    {
        var app = new ReadApplication(dataDirectory, postgres, settings);
        app.UseKestrel(0);
        app.StartServer();
        return app;
    }

    public T Service<T>() where T : notnull => Services.GetRequiredService<T>();

    public HttpClient CreateClient(string? apiKey)
    {
        var client = CreateClient();
        client.Timeout = TimeSpan.FromMinutes(2);
        if (apiKey is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return client;
    }

    /// <summary>Creates a tenant through the admin endpoint and returns a client that authenticates as it.</summary>
    public async Task<HttpClient> CreateTenantClientAsync(string name)
    {
        using var admin = CreateClient(AdminKey);
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name });
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
        return CreateClient(body.GetProperty("api_key").GetString());
    }
}
