using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>
/// The lock under real contention: threads acquiring, cancelling and releasing at once on the system clock. Counts
/// only — the concurrency limit holds, and every call ends granted or cancelled with nothing left queued or running.
/// </summary>
public sealed class UpstreamSchedulerConcurrencyTests
{
    [Fact]
    public async Task Racing_acquisitions_cancellations_and_releases_keep_the_limit_and_lose_nothing()
    {
        // A rate far above what the threads can reach, so only concurrency and the races are under test.
        using var scheduler = new UpstreamScheduler(new UpstreamSchedulerOptions(maxConcurrency: 3, requestsPerSecond: 100_000, maxQueuePerClient: 1_000), TimeProvider.System);
        var running = 0;
        var mostRunning = 0;
        var granted = 0;
        var cancelled = 0;

        async Task Worker(int id)
        {
            var random = new Random(id);
            for (var i = 0; i < 300; i++)
            {
                using var cancellation = new CancellationTokenSource();
                var priority = random.Next(4) == 0 ? WorkPriority.Background : WorkPriority.Foreground;
                var deadline = random.Next(2) == 0 ? DateTimeOffset.MaxValue : DateTimeOffset.UtcNow.AddMinutes(1);
                var pending = scheduler.AcquireAsync($"client-{id % 4}", priority, deadline, cancellation.Token).AsTask();
                if (random.Next(3) == 0)
                {
                    cancellation.Cancel();
                }

                try
                {
                    using var lease = await pending;
                    Assert.True(lease.IsAcquired);
                    var now = Interlocked.Increment(ref running);
                    InterlockedMax(ref mostRunning, now);
                    await Task.Yield();
                    Interlocked.Decrement(ref running);
                    Interlocked.Increment(ref granted);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref cancelled);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 8).Select(id => Task.Run(() => Worker(id)))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.InRange(mostRunning, 1, 3);
        Assert.Equal(8 * 300, granted + cancelled);
        var statistics = scheduler.GetStatistics();
        Assert.Equal((0, 0), (statistics.Queued, statistics.Running));
        Assert.Equal(granted, statistics.Granted);

        // Cancelled before it was queued (no count) or while queued (counted): never more than were cancelled.
        Assert.InRange(statistics.Cancelled, 0, cancelled);
        Assert.Equal(0, SchedulerRefusals.All.Sum(statistics.Refused));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
