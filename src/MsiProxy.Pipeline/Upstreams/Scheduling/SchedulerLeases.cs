using System.Threading.RateLimiting;

namespace MsiProxy.Upstreams.Scheduling;

/// <summary>A granted slot: disposing it ends the attempt and frees its concurrency permit (once, however often it is disposed).</summary>
internal sealed class GrantedSlot(UpstreamScheduler scheduler, WorkPriority priority) : RateLimitLease
{
    private int _released;

    public WorkPriority Priority { get; } = priority;

    public override bool IsAcquired => true;

    public override IEnumerable<string> MetadataNames => [];

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        metadata = null;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            scheduler.Release(Priority);
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// A refusal: <see cref="MetadataName.RetryAfter"/> (what Polly's rate-limiter strategy puts into
/// <c>RateLimiterRejectedException.RetryAfter</c>) and <see cref="UpstreamScheduler.RefusalMetadata"/> (the reason).
/// </summary>
internal sealed class RefusedSlot(SchedulerRefusal refusal, TimeSpan? retryAfter) : RateLimitLease
{
    private static readonly string[] WithRetryAfter = [MetadataName.RetryAfter.Name, UpstreamScheduler.RefusalMetadata.Name];
    private static readonly string[] WithoutRetryAfter = [UpstreamScheduler.RefusalMetadata.Name];

    public SchedulerRefusal Refusal { get; } = refusal;
    public TimeSpan? RetryAfter { get; } = retryAfter;

    public override bool IsAcquired => false;

    public override IEnumerable<string> MetadataNames => RetryAfter is null ? WithoutRetryAfter : WithRetryAfter;

    public override bool TryGetMetadata(string metadataName, out object? metadata)
    {
        if (metadataName == UpstreamScheduler.RefusalMetadata.Name)
        {
            metadata = Refusal.Name();
            return true;
        }

        if (metadataName == MetadataName.RetryAfter.Name && RetryAfter is { } retryAfter)
        {
            metadata = retryAfter;
            return true;
        }

        metadata = null;
        return false;
    }
}
