using Read.Domain.FineTuning;
using Read.Domain.Jobs;

namespace Read.Api.Tests;

/// <summary>
/// Holds the training thread at the start of one stage until the test releases it: a stage that runs long without writing
/// a checkpoint (a large backbone's precompute, a long epoch), during which only the lease watcher keeps the lease.
/// </summary>
internal sealed class BlockingStageListener(FineTuneStage stage) : IJobStageListener, IDisposable
{
    private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ManualResetEventSlim _release = new();

    /// <summary>Completes once the run has entered the stage (and is held there).</summary>
    public Task Entered => _entered.Task;

    public void OnStageStarted(string jobId, FineTuneStage started)
    {
        if (started != stage)
            return;
        _entered.TrySetResult();
        if (!_release.Wait(TimeSpan.FromMinutes(2)))
            throw new TimeoutException("The test never released the stage.");
    }

    public void Release() => _release.Set();

    public void Dispose() => _release.Dispose();
}
