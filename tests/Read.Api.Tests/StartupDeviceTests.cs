using Microsoft.Extensions.Options;
using TorchSharp;

namespace Read.Api.Tests;

/// <summary>
/// Read:Device is checked at start-up: a device this process cannot use stops it with the reason. Each case holds on
/// the default libtorch-cpu build and on a -p:ReadTorchBackend=cuda build on a GPU host.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class StartupDeviceTests : IDisposable
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-device-").FullName;

    [Fact]
    public void Start_MisspelledDevice_RefusesWithAClearMessage() =>
        AssertRefused("gpu0", "not one of auto, cpu, cuda, cuda:N");

    [Fact]
    public void Start_CudaIndexBeyondTheDevices_RefusesWithAClearMessage()
    {
        // One past the last device TorchSharp reports: unusable on either build (libtorch-cpu reports none).
        var count = torch.cuda.device_count();
        AssertRefused($"cuda:{count}", count == 0 ? "-p:ReadTorchBackend=cuda" : $"reports {count} CUDA device(s)");
    }

    [Fact]
    public async Task Start_Cuda_RefusedExactlyWhenTorchSharpReportsNoCuda()
    {
        if (!torch.cuda.is_available())
        {
            AssertRefused("cuda", "TorchSharp reports no CUDA device"); // this repository's default libtorch-cpu build
            return;
        }

        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?> { ["Read:Device"] = "cuda" });
        using var client = app.CreateClient(ReadApplication.AdminKey);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }

    private void AssertRefused(string device, string reason)
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
