using Read.Domain.Backbones;

namespace Read.Api.Tests;

/// <summary>
/// Holds a backbone's forward lock on a thread of its own, as a long forward (a training job's evaluation, say) does,
/// until released: what queues behind it, and on which threads, can then be seen. The next forward blocks on the
/// real lock, exactly where a slow forward would keep it.
/// </summary>
internal sealed class LongForward : IAsyncDisposable
{
    private readonly ManualResetEventSlim release = new();
    private readonly TaskCompletionSource held = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread thread;

    private LongForward(Backbone backbone)
    {
        thread = new Thread(() => backbone.WhileForwardsHeld(() =>
        {
            held.SetResult();
            release.Wait();
        })) { IsBackground = true, Name = "long forward" };
        thread.Start();
    }

    public static async Task<LongForward> StartAsync(Backbone backbone)
    {
        var forward = new LongForward(backbone);
        await forward.held.Task;
        return forward;
    }

    public void Release() => release.Set();

    public async ValueTask DisposeAsync()
    {
        release.Set();
        await Task.Run(thread.Join);
        release.Dispose();
    }
}
