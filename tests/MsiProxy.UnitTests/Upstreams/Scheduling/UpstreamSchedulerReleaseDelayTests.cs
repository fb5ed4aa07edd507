using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>
/// IMDS counts a request in flight until it has finished answering, a moment after the proxy has read the answer: an
/// ended attempt's slot is free again only <see cref="UpstreamSchedulerOptions.ReleaseDelay"/> later — to whoever waits
/// for it, and to whoever asks after, with or without a wait in between.
/// </summary>
public sealed class UpstreamSchedulerReleaseDelayTests
{
    private static readonly TimeSpan Delay = TimeSpan.FromMilliseconds(10);

    // One slot and a rate that never binds: the release delay alone decides when the next attempt starts.
    private static SchedulerHarness OneSlot() => new(new UpstreamSchedulerOptions(maxConcurrency: 1, requestsPerSecond: 1000, releaseDelay: Delay));

    [Fact]
    public void A_waiting_attempt_starts_when_the_release_delay_of_the_one_before_has_passed()
    {
        using var harness = OneSlot();
        var first = harness.Request("a");
        var second = harness.Request("b");
        Assert.Equal((AttemptState.Granted, AttemptState.Waiting), (first.State, second.State));

        harness.Complete(first);
        var ended = harness.Now;
        harness.Advance(Delay - TimeSpan.FromMilliseconds(1));
        Assert.Equal(AttemptState.Waiting, second.State);
        Assert.Equal(1, harness.Scheduler.GetStatistics().Running);

        harness.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(AttemptState.Granted, second.State);
        Assert.Equal(ended + Delay, second.ResolvedAt);
    }

    [Fact]
    public void With_nobody_waiting_the_slot_counts_until_its_delay_has_passed_and_is_free_at_once_after()
    {
        using var harness = OneSlot();
        harness.Complete(harness.Request("a"));
        Assert.Equal(1, harness.Scheduler.GetStatistics().Running);

        harness.Advance(Delay);
        Assert.Equal(0, harness.Scheduler.GetStatistics().Running);
        var next = harness.Request("b");
        Assert.Equal(AttemptState.Granted, next.State);
    }

    [Fact]
    public void An_attempt_that_asks_before_the_delay_has_passed_waits_for_it_and_no_longer()
    {
        using var harness = OneSlot();
        harness.Complete(harness.Request("a"));
        var ended = harness.Now;
        harness.Advance(TimeSpan.FromMilliseconds(4));

        var next = harness.Request("b");
        Assert.Equal(AttemptState.Waiting, next.State);
        harness.AdvanceUntil(() => next.State != AttemptState.Waiting, TimeSpan.FromSeconds(1));
        Assert.Equal(AttemptState.Granted, next.State);
        Assert.Equal(ended + Delay, next.ResolvedAt);
    }
}
