namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// How many attempts started in the last window (one second), counted in 1 ms buckets. A start is counted in the
/// bucket at or after its time (rounded up), so it stays counted for at least a full window: no half-open interval of
/// one window length ever holds more than N starts, wherever it falls. That is the strictest reading of "N per second"
/// (a fixed window lets 2N through across its edge, a token bucket lets its burst through on top of the rate, a
/// segmented window some between segments); the rounding costs at most 1 ms of headroom. Memory is fixed — about a
/// thousand counters, whatever N is, so a rate raised to "unlimited" for a benchmark costs nothing — and each
/// operation is O(1) amortised (a bucket is cleared once, when it leaves the window). Not thread-safe: the
/// scheduler's lock guards it.
/// </summary>
internal sealed class SlidingStartWindow
{
    private const int BucketsPerWindow = 1000;

    private readonly int _permits;
    private readonly long _window;
    private readonly long _bucket;
    private readonly int[] _counts;
    private long _oldest;
    private long _newest = long.MinValue;
    private int _total;

    /// <param name="permits">Starts allowed per window.</param>
    /// <param name="window">Window length in <see cref="TimeProvider.GetTimestamp"/> units.</param>
    public SlidingStartWindow(int permits, long window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(permits, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        _permits = permits;
        _window = window;
        _bucket = Math.Max(1, window / BucketsPerWindow);

        // Counted buckets span at most one window plus the bucket being filled.
        _counts = new int[(int)((window + _bucket - 1) / _bucket) + 2];
    }

    /// <summary>Starts still counted at <paramref name="now"/>, i.e. in (now − window, now].</summary>
    public int InWindow(long now)
    {
        Expire(now);
        return _total;
    }

    /// <summary>
    /// When the next start may happen if it must leave <paramref name="reserve"/> of the window's permits unused
    /// (0 for foreground work; background work keeps some for callers). At or before <paramref name="now"/> means now.
    /// </summary>
    public long NextStart(int reserve, long now)
    {
        Expire(now);
        var excess = _total - (_permits - reserve) + 1;
        return excess <= 0 ? now : WhenFreed(excess);
    }

    public void Record(long now)
    {
        Expire(now);
        var bucket = BucketOf(now);
        if (_total == 0)
        {
            _oldest = bucket;
        }

        _counts[Slot(bucket)]++;
        _newest = Math.Max(_newest, bucket);
        _total++;
    }

    /// <summary>
    /// The earliest time the <paramref name="nth"/> start from now (1-based) can happen as far as the rate goes: the
    /// permits free now, then one per counted start as it leaves the window; each further N starts add one window,
    /// because the n-th next start is at least a window after the start N places before it.
    /// </summary>
    public long EarliestStart(int nth, long now)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nth, 1);
        Expire(now);
        var withinWindow = ((nth - 1) % _permits) + 1;
        var windowsLater = (long)((nth - 1) / _permits) * _window;
        var needed = withinWindow - (_permits - _total);
        return (needed <= 0 ? now : WhenFreed(needed)) + windowsLater;
    }

    /// <summary>When <paramref name="starts"/> (≤ the total counted) of the counted starts have left the window.</summary>
    private long WhenFreed(int starts)
    {
        var freed = 0;
        for (var bucket = _oldest; ; bucket++)
        {
            freed += _counts[Slot(bucket)];
            if (freed >= starts)
            {
                return (bucket * _bucket) + _window;
            }
        }
    }

    /// <summary>Drops the buckets whose starts are a full window old.</summary>
    private void Expire(long now)
    {
        while (_total > 0 && (_oldest * _bucket) + _window <= now)
        {
            ref var count = ref _counts[Slot(_oldest)];
            _total -= count;
            count = 0;
            _oldest++;
        }
    }

    private long BucketOf(long timestamp) => (timestamp / _bucket) + (timestamp % _bucket == 0 ? 0 : 1);

    private int Slot(long bucket) => (int)(bucket % _counts.Length);
}
