namespace MsiProxy.ImdsEmulator.Limits;

/// <summary>
/// The managed-identity category limits: a sliding one-second window of admitted requests and a cap on admitted
/// requests in flight. A refused request never counts against either.
/// </summary>
internal sealed class IdentityLimiter(LimitOptions options, TimeProvider time)
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(1);

    private readonly Lock _gate = new();
    private readonly Queue<DateTimeOffset> _admitted = new();
    private int _inFlight;

    /// <summary>Tries to admit a request; on success the caller must dispose the returned lease when done.</summary>
    public bool TryAcquire(out Lease lease)
    {
        lease = default;
        if (!options.Enabled)
        {
            return true;
        }

        var now = time.GetUtcNow();
        lock (_gate)
        {
            while (_admitted.Count > 0 && now - _admitted.Peek() >= Window)
            {
                _admitted.Dequeue();
            }

            if (_admitted.Count >= options.RequestsPerSecond || _inFlight >= options.MaxConcurrency)
            {
                return false;
            }

            _admitted.Enqueue(now);
            _inFlight++;
        }

        lease = new Lease(this);
        return true;
    }

    public void Reset()
    {
        lock (_gate)
        {
            _admitted.Clear();
        }
    }

    private void Release()
    {
        lock (_gate)
        {
            _inFlight--;
        }
    }

    internal readonly struct Lease(IdentityLimiter? owner) : IDisposable
    {
        public void Dispose() => owner?.Release();
    }
}
