namespace Read.Research.Baselines;

/// <summary>Removes a forward hook when disposed.</summary>
internal sealed class HookHandle(Action remove) : IDisposable
{
    private Action? remove = remove;

    public void Dispose()
    {
        remove?.Invoke();
        remove = null;
    }
}
