namespace MsiProxy.Upstreams.Scheduling;

/// <summary>A consistent snapshot of the scheduler for telemetry (taken under its lock).</summary>
internal readonly record struct UpstreamSchedulerStatistics(
    int QueuedForeground,
    int QueuedBackground,
    int RunningForeground,
    int RunningBackground,
    int ForegroundClientsWaiting,
    int BackgroundClientsWaiting,
    int StartsInLastSecond,
    long Granted,
    long Cancelled,
    long RefusedQueueFull,
    long RefusedOverBudget,
    long RefusedExpired,
    long RefusedNoCapacity,
    long RefusedDisposed)
{
    public int Queued => QueuedForeground + QueuedBackground;
    public int Running => RunningForeground + RunningBackground;

    public long Refused(SchedulerRefusal refusal) => refusal switch
    {
        SchedulerRefusal.QueueFull => RefusedQueueFull,
        SchedulerRefusal.OverBudget => RefusedOverBudget,
        SchedulerRefusal.Expired => RefusedExpired,
        SchedulerRefusal.NoCapacity => RefusedNoCapacity,
        SchedulerRefusal.Disposed => RefusedDisposed,
        _ => throw new ArgumentOutOfRangeException(nameof(refusal), refusal, null),
    };
}
