using MsiProxy.Configuration;

namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// The limits the scheduler keeps the node inside. IMDS allows a VM 20 managed-identity requests per second and 5 at a
/// time (imds.md §4.1); the background limits keep a share of both free for callers.
/// </summary>
internal sealed record UpstreamSchedulerOptions
{
    public UpstreamSchedulerOptions(
        int maxConcurrency = 5,
        int requestsPerSecond = 20,
        int maxQueuePerClient = 64,
        int? maxBackgroundConcurrency = null,
        int? maxBackgroundRequestsPerSecond = null,
        TimeSpan? rateWindow = null,
        TimeSpan? releaseDelay = null)
    {
        ReleaseDelay = releaseDelay ?? TimeSpan.Zero;
        ArgumentOutOfRangeException.ThrowIfLessThan(ReleaseDelay, TimeSpan.Zero, nameof(releaseDelay));
        RateWindow = rateWindow ?? TimeSpan.FromSeconds(1);
        ArgumentOutOfRangeException.ThrowIfLessThan(RateWindow, TimeSpan.FromMilliseconds(1), nameof(rateWindow));
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrency, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(requestsPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxQueuePerClient, 1);
        MaxConcurrency = maxConcurrency;
        RequestsPerSecond = requestsPerSecond;
        MaxQueuePerClient = maxQueuePerClient;

        // With a single slot there is no spare one to keep for callers; background work still has to run (tokens expire).
        MaxBackgroundConcurrency = maxBackgroundConcurrency ?? Math.Max(1, maxConcurrency - 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackgroundConcurrency, 1, nameof(maxBackgroundConcurrency));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBackgroundConcurrency, maxConcurrency, nameof(maxBackgroundConcurrency));

        // The same share of the rate as of the slots: 20/s × 4/5 = 16/s, so 4 grants of every second stay for callers.
        MaxBackgroundRequestsPerSecond = maxBackgroundRequestsPerSecond
            ?? Math.Max(1, requestsPerSecond * MaxBackgroundConcurrency / maxConcurrency);
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxBackgroundRequestsPerSecond, 1, nameof(maxBackgroundRequestsPerSecond));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBackgroundRequestsPerSecond, requestsPerSecond, nameof(maxBackgroundRequestsPerSecond));
    }

    /// <summary>Attempts running at once (foreground and background together).</summary>
    public int MaxConcurrency { get; }

    /// <summary>Attempts started in any <see cref="RateWindow"/> (a sliding window, see <see cref="SlidingStartWindow"/>).</summary>
    public int RequestsPerSecond { get; }

    /// <summary>The window <see cref="RequestsPerSecond"/> counts in: a second, or a little more (see <see cref="ResilienceOptions.RateWindow"/>).</summary>
    public TimeSpan RateWindow { get; }

    /// <summary>How long after an attempt ends its permit is free again (see <see cref="ResilienceOptions.SlotReleaseDelay"/>).</summary>
    public TimeSpan ReleaseDelay { get; }

    /// <summary>Items one client may have waiting, per priority; the next one is refused with <see cref="SchedulerRefusal.QueueFull"/>.</summary>
    public int MaxQueuePerClient { get; }

    /// <summary>Background attempts running at once; below <see cref="MaxConcurrency"/> so a caller never waits for a full set of them.</summary>
    public int MaxBackgroundConcurrency { get; }

    /// <summary>Background attempts started in any one-second interval; the rest of <see cref="RequestsPerSecond"/> is kept for callers.</summary>
    public int MaxBackgroundRequestsPerSecond { get; }

    public static UpstreamSchedulerOptions From(ResilienceOptions resilience) =>
        new(resilience.MaxConcurrency, resilience.RequestsPerSecond, resilience.MaxQueuePerClient, rateWindow: resilience.RateWindow,
            releaseDelay: resilience.SlotReleaseDelay);
}
