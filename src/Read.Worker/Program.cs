namespace Read.Worker;

internal static class Program
{
    public static async Task Main(string[] args)
    {
        using var host = await WorkerHost.BuildAsync(args);
        await host.RunAsync();
    }
}
