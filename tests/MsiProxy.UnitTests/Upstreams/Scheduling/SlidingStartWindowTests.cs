using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>The sliding window: at most N starts in any interval of one window, its rounding, and the earliest-start estimate.</summary>
public sealed class SlidingStartWindowTests
{
    private const long Window = 1000;

    [Fact]
    public void A_start_is_allowed_only_once_the_start_n_places_back_has_left_the_window()
    {
        var window = new SlidingStartWindow(3, Window);
        Assert.True(window.NextStart(0, 0) <= 0);
        window.Record(0);
        window.Record(400);
        window.Record(900);
        Assert.Equal(1000, window.NextStart(0, 900));
        window.Record(1000);

        // Not at 1399: the interval [400, 1400) would hold 400, 900, 1000 and 1399.
        Assert.Equal(1400, window.NextStart(0, 1000));
        Assert.Equal(3, window.InWindow(1000));
        Assert.Equal(2, window.InWindow(1400));
    }

    [Fact]
    public void A_reserve_keeps_that_many_of_the_windows_starts_free()
    {
        var window = new SlidingStartWindow(4, Window);
        window.Record(0);
        window.Record(10);

        // With one of four kept back, a third start may go now, a fourth only when the first has left the window.
        Assert.True(window.NextStart(1, 10) <= 10);
        window.Record(20);
        Assert.Equal(1000, window.NextStart(1, 20));
        Assert.True(window.NextStart(0, 20) <= 20);
    }

    [Fact]
    public void The_earliest_start_of_the_nth_next_grant_adds_a_window_per_n_grants()
    {
        var window = new SlidingStartWindow(2, Window);
        window.Record(100);
        Assert.Equal(500, window.EarliestStart(1, 500));
        Assert.Equal(1100, window.EarliestStart(2, 500));
        Assert.Equal(1500, window.EarliestStart(3, 500));
        Assert.Equal(2100, window.EarliestStart(4, 500));
        Assert.Equal(2500, window.EarliestStart(5, 500));
    }

    [Fact]
    public void A_start_between_bucket_edges_is_counted_for_at_least_a_full_window()
    {
        // A 10,000-tick window has 10-tick buckets: a start at 5 counts as one at 10, so it leaves at 10,010, not 10,005.
        var window = new SlidingStartWindow(1, 10_000);
        window.Record(5);
        Assert.Equal(1, window.InWindow(10_005));
        Assert.Equal(10_010, window.NextStart(0, 10_005));
        Assert.Equal(0, window.InWindow(10_010));
    }

    [Fact]
    public void Memory_does_not_grow_with_the_rate()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var window = new SlidingStartWindow(1_000_000, TimeSpan.TicksPerSecond);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 16 * 1024);

        for (var i = 0; i < 1_000_000; i++)
        {
            window.Record(TimeSpan.TicksPerSecond + i);
        }

        Assert.Equal(TimeSpan.TicksPerSecond * 2, window.NextStart(0, TimeSpan.TicksPerSecond + 999_999));
    }
}
