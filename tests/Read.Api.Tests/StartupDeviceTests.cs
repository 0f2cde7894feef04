using Microsoft.Extensions.Options;

namespace Read.Api.Tests;

/// <summary>Read:Device is checked at start-up: a device this process cannot use stops it with the reason.</summary>
[Collection(ServiceCollection.Name)]
public sealed class StartupDeviceTests : IDisposable
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-device-").FullName;

    [Theory]
    [InlineData("cuda", "TorchSharp reports no CUDA device")] // this build links libtorch-cpu
    [InlineData("cuda:1", "-p:ReadTorchBackend=cuda")]
    [InlineData("gpu0", "not one of auto, cpu, cuda, cuda:N")]
    public void Start_UnusableDevice_RefusesWithAClearMessage(string device, string reason)
    {
        using var app = new ReadApplication(_dataDirectory, postgres: null, new Dictionary<string, string?> { ["Read:Device"] = device });
        app.UseKestrel(0);
        var error = Assert.ThrowsAny<Exception>(app.StartServer);
        var validation = Flatten(error).OfType<OptionsValidationException>().FirstOrDefault();
        Assert.True(validation is not null, error.ToString());
        Assert.Contains("Read:Device", validation.Message);
        Assert.Contains($"'{device}'", validation.Message);
        Assert.Contains(reason, validation.Message);
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("auto")]
    public async Task Start_CpuOrAuto_Starts(string device)
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?> { ["Read:Device"] = device });
        using var client = app.CreateClient(ReadApplication.AdminKey);
        var response = await client.GetAsync("/healthz");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
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
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
