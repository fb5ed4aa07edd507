namespace MsiProxy.Upstreams.Scheduling;

/// <summary>Why the scheduler refused an attempt; carried by the refused lease as <see cref="UpstreamScheduler.RefusalMetadata"/>.</summary>
internal enum SchedulerRefusal
{
    /// <summary>The client's own queue (of this priority) is full. Only that client is refused.</summary>
    QueueFull,

    /// <summary>On arrival, the estimated wait already ends after the deadline (or the deadline has passed).</summary>
    OverBudget,

    /// <summary>The item waited in its queue until its deadline passed.</summary>
    Expired,

    /// <summary><see cref="System.Threading.RateLimiting.PartitionedRateLimiter{TResource}.AttemptAcquire"/> found no free slot (it never queues).</summary>
    NoCapacity,

    /// <summary>The scheduler was disposed (the proxy is stopping) while the item waited.</summary>
    Disposed,
}

internal static class SchedulerRefusals
{
    public static readonly SchedulerRefusal[] All = Enum.GetValues<SchedulerRefusal>();

    /// <summary>The value of the <c>msiproxy.refusal</c> metadata and of the telemetry <c>reason</c> tag.</summary>
    public static string Name(this SchedulerRefusal refusal) => refusal switch
    {
        SchedulerRefusal.QueueFull => "queue_full",
        SchedulerRefusal.OverBudget => "over_budget",
        SchedulerRefusal.Expired => "expired",
        SchedulerRefusal.NoCapacity => "no_capacity",
        SchedulerRefusal.Disposed => "disposed",
        _ => throw new ArgumentOutOfRangeException(nameof(refusal), refusal, null),
    };
}
