namespace MsiProxy.ImdsEmulator;

/// <summary>Live, thread-safe counters. Read a property for the current value or <see cref="Snapshot"/> for all.</summary>
public sealed class EmulatorCounters
{
    private long _totalRequests;
    private long _tokenRequests;
    private long _tokensIssued;
    private long _throttled;
    private long _faultsApplied;
    private int _currentConcurrency;
    private int _maxConcurrency;

    public long TotalRequests => Interlocked.Read(ref _totalRequests);

    /// <summary>Requests that reached the token endpoint path (whatever the outcome).</summary>
    public long TokenRequests => Interlocked.Read(ref _tokenRequests);

    /// <summary>New tokens minted (cache hits do not count).</summary>
    public long TokensIssued => Interlocked.Read(ref _tokensIssued);

    /// <summary>Requests answered 429 by the limits (not by scripted faults).</summary>
    public long Throttled => Interlocked.Read(ref _throttled);

    public long FaultsApplied => Interlocked.Read(ref _faultsApplied);

    public int CurrentConcurrency => Volatile.Read(ref _currentConcurrency);

    public int MaxConcurrency => Volatile.Read(ref _maxConcurrency);

    public CountersSnapshot Snapshot() => new(
        TotalRequests, TokenRequests, TokensIssued, Throttled, FaultsApplied, CurrentConcurrency, MaxConcurrency);

    internal void RequestArrived() => Interlocked.Increment(ref _totalRequests);

    internal void TokenRequestArrived() => Interlocked.Increment(ref _tokenRequests);

    internal void TokenIssued() => Interlocked.Increment(ref _tokensIssued);

    internal void RequestThrottled() => Interlocked.Increment(ref _throttled);

    internal void FaultApplied() => Interlocked.Increment(ref _faultsApplied);

    /// <returns>The concurrency including the entering request.</returns>
    internal int Enter()
    {
        var now = Interlocked.Increment(ref _currentConcurrency);
        int seen;
        while (now > (seen = Volatile.Read(ref _maxConcurrency)))
        {
            if (Interlocked.CompareExchange(ref _maxConcurrency, now, seen) == seen)
            {
                break;
            }
        }

        return now;
    }

    internal void Leave() => Interlocked.Decrement(ref _currentConcurrency);

    /// <summary>Zeroes everything except the requests currently in flight.</summary>
    internal void Reset()
    {
        Interlocked.Exchange(ref _totalRequests, 0);
        Interlocked.Exchange(ref _tokenRequests, 0);
        Interlocked.Exchange(ref _tokensIssued, 0);
        Interlocked.Exchange(ref _throttled, 0);
        Interlocked.Exchange(ref _faultsApplied, 0);
        Interlocked.Exchange(ref _maxConcurrency, Volatile.Read(ref _currentConcurrency));
    }
}

/// <summary>Counters at one moment (what the control API serves).</summary>
public sealed record CountersSnapshot(
    long TotalRequests,
    long TokenRequests,
    long TokensIssued,
    long Throttled,
    long FaultsApplied,
    int CurrentConcurrency,
    int MaxConcurrency);
