using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.Tests.Upstreams.Scheduling;

/// <summary>The exact sliding window: at most N starts in any interval of one window, and the earliest-start estimate.</summary>
public sealed class SlidingGrantLogTests
{
    private const long Window = 1000;

    [Fact]
    public void A_start_is_allowed_only_once_the_start_n_places_back_has_left_the_window()
    {
        var log = new SlidingGrantLog(3, Window);
        Assert.True(log.NextStart(0) <= 0);
        log.Record(0);
        log.Record(400);
        log.Record(900);
        Assert.Equal(1000, log.NextStart(0));
        log.Record(1000);

        // Not at 1399: the interval [400, 1400) would hold 400, 900, 1000 and 1399.
        Assert.Equal(1400, log.NextStart(0));
        Assert.Equal(3, log.InWindow(1000));
        Assert.Equal(2, log.InWindow(1400));
    }

    [Fact]
    public void A_reserve_keeps_that_many_of_the_windows_starts_free()
    {
        var log = new SlidingGrantLog(4, Window);
        log.Record(0);
        log.Record(10);

        // With one of four kept back, a third start may go now, a fourth only when the first has left the window.
        Assert.True(log.NextStart(1) <= 10);
        log.Record(20);
        Assert.Equal(1000, log.NextStart(1));
        Assert.True(log.NextStart(0) <= 20);
    }

    [Fact]
    public void The_earliest_start_of_the_nth_next_grant_adds_a_window_per_n_grants()
    {
        var log = new SlidingGrantLog(2, Window);
        log.Record(100);
        Assert.Equal(500, log.EarliestStart(1, 500));
        Assert.Equal(1100, log.EarliestStart(2, 500));
        Assert.Equal(1500, log.EarliestStart(3, 500));
        Assert.Equal(2100, log.EarliestStart(4, 500));
        Assert.Equal(2500, log.EarliestStart(5, 500));
    }
}
