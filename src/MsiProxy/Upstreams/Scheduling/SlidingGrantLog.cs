namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// The start times of the last N grants (N = the rate), oldest first, in a ring. A grant may start at <c>now</c> only
/// if the oldest of them is at least one window old, so no half-open interval of one window length ever holds more
/// than N starts — wherever the interval falls. That is the strictest reading of "N per second" (a fixed window lets
/// 2N through across its edge; a segmented sliding window lets some through between segments), and it is O(1) and
/// allocation-free. Not thread-safe: the scheduler's lock guards it.
/// </summary>
internal sealed class SlidingGrantLog
{
    private readonly long[] _starts;
    private readonly long _window;
    private int _oldest;

    /// <param name="permits">Grants allowed per window.</param>
    /// <param name="window">Window length in <see cref="TimeProvider.GetTimestamp"/> units.</param>
    public SlidingGrantLog(int permits, long window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(permits, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        _starts = new long[permits];

        // "Long ago": every permit is free, and adding a window cannot overflow.
        Array.Fill(_starts, long.MinValue / 2);
        _window = window;
    }

    public int Permits => _starts.Length;

    /// <summary>
    /// When the next grant may start if it must leave <paramref name="reserve"/> of the window's permits unused
    /// (0 for foreground work; background work keeps some for callers). At or before now means "now".
    /// </summary>
    public long NextStart(int reserve) => _starts[(_oldest + reserve) % _starts.Length] + _window;

    public void Record(long start)
    {
        _starts[_oldest] = start;
        _oldest = (_oldest + 1) % _starts.Length;
    }

    /// <summary>
    /// The earliest time the <paramref name="nth"/> grant from now (1-based) can start as far as the rate goes: the
    /// n-th next start must be one window after the start N places before it, which is either one already logged or,
    /// for n &gt; N, itself a future start — so each further N grants add one window.
    /// </summary>
    public long EarliestStart(int nth, long now)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nth, 1);
        var permits = _starts.Length;
        var logged = _starts[(_oldest + ((nth - 1) % permits)) % permits] + _window;
        return Math.Max(now, logged) + ((long)((nth - 1) / permits) * _window);
    }

    /// <summary>Grants started in the window ending at <paramref name="now"/> (for statistics).</summary>
    public int InWindow(long now)
    {
        var count = 0;
        foreach (var start in _starts)
        {
            if (start + _window > now)
            {
                count++;
            }
        }

        return count;
    }
}
