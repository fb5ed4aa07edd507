using System.Threading.RateLimiting;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>
/// Who is refused, when, and with what: a full lane, a wait that cannot fit the deadline, a deadline passing in the
/// queue — and that cancellation, disposal and leases leave nothing behind.
/// </summary>
public sealed class UpstreamSchedulerRefusalTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(8);
    private static readonly UpstreamSchedulerOptions OneSlot = new(maxConcurrency: 1, requestsPerSecond: 1000, maxQueuePerClient: 4);

    [Fact]
    public void A_full_lane_refuses_only_its_own_client_with_retry_after_and_reason()
    {
        using var harness = new SchedulerHarness(OneSlot);
        harness.RequestMany("noisy", 5, budget: Budget);
        Assert.Equal(4, harness.Waiting.Count);

        var refused = harness.Request("noisy", budget: Budget);
        Assert.Equal(AttemptState.Refused, refused.State);
        Assert.Equal("queue_full", refused.Refusal);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.RetryAfter);

        // Another client, and the same client's background lane, still queue.
        Assert.Equal(AttemptState.Waiting, harness.Request("quiet", budget: Budget).State);
        Assert.Equal(AttemptState.Waiting, harness.Request("noisy", WorkPriority.Background).State);
        Assert.Equal(1, harness.Scheduler.GetStatistics().RefusedQueueFull);
        Assert.Equal(4, harness.Scheduler.GetStatistics(new UpstreamWork("noisy", WorkPriority.Foreground, DateTimeOffset.MaxValue))!.CurrentQueuedCount);
    }

    [Fact]
    public void A_wait_the_rate_cannot_fit_in_the_budget_is_refused_at_once_with_the_estimate_as_retry_after()
    {
        // Defaults: 5 at a time, 20/s. 60 items: 5 start now, 55 wait.
        using var harness = new SchedulerHarness();
        harness.RequestMany("flood", 60, budget: TimeSpan.FromSeconds(60));

        // The next one would be the 61st start: 20 fit in [0 s, 1 s), 20 in [1 s, 2 s), 20 in [2 s, 3 s) → at 3 s.
        var tooLate = harness.Request("flood", budget: TimeSpan.FromSeconds(2.5));
        Assert.Equal(AttemptState.Refused, tooLate.State);
        Assert.Equal("over_budget", tooLate.Refusal);
        Assert.Equal(TimeSpan.FromSeconds(3), tooLate.RetryAfter);

        var fits = harness.Request("flood", budget: TimeSpan.FromSeconds(3.5));
        Assert.Equal(AttemptState.Waiting, fits.State);

        // The flood's backlog does not count against another client: it is next but one in the round.
        var quiet = harness.Request("quiet", budget: TimeSpan.FromSeconds(0.5));
        Assert.Equal(AttemptState.Waiting, quiet.State);

        harness.AdvanceUntil(() => fits.State != AttemptState.Waiting, TimeSpan.FromSeconds(4),
            () => UpstreamSchedulerFairnessTests.CompleteOlderThan(harness, TimeSpan.FromMilliseconds(10)));
        Assert.Equal(AttemptState.Granted, quiet.State);
        Assert.True(quiet.ResolvedAt < quiet.Deadline);
        Assert.Equal(AttemptState.Granted, fits.State);
        Assert.True(fits.ResolvedAt <= fits.Deadline);
        Assert.Equal(1, harness.Scheduler.GetStatistics().RefusedOverBudget);
    }

    [Fact]
    public void A_deadline_already_passed_is_refused_even_with_free_slots()
    {
        using var harness = new SchedulerHarness();
        var late = harness.Request("app", budget: TimeSpan.Zero);
        Assert.Equal(AttemptState.Refused, late.State);
        Assert.Equal("over_budget", late.Refusal);
        Assert.Equal(TimeSpan.FromSeconds(1), late.RetryAfter);
        Assert.Equal(0, harness.Scheduler.GetStatistics().Granted);
    }

    [Fact]
    public void An_item_whose_deadline_passes_while_queued_is_refused_then_and_takes_no_slot()
    {
        using var harness = new SchedulerHarness(OneSlot);
        var running = harness.Request("a", budget: Budget);
        var waiting = harness.Request("b", budget: TimeSpan.FromSeconds(3));

        harness.Advance(TimeSpan.FromMilliseconds(2999));
        Assert.Equal(AttemptState.Waiting, waiting.State);
        harness.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(AttemptState.Refused, waiting.State);
        Assert.Equal("expired", waiting.Refusal);
        Assert.Equal(waiting.Deadline, waiting.ResolvedAt);
        Assert.Equal(TimeSpan.FromSeconds(1), waiting.RetryAfter);

        harness.Complete(running);
        var statistics = harness.Scheduler.GetStatistics();
        Assert.Equal((0, 0, 1L, 1L), (statistics.Queued, statistics.Running, statistics.Granted, statistics.RefusedExpired));
    }

    [Fact]
    public void A_deadline_further_off_than_a_timer_can_wait_still_expires_on_time()
    {
        using var harness = new SchedulerHarness(OneSlot);
        harness.Request("a", budget: Budget);
        var waiting = harness.Request("b", budget: TimeSpan.FromDays(100));

        harness.Time.Advance(TimeSpan.FromDays(99));
        harness.Poll();
        Assert.Equal(AttemptState.Waiting, waiting.State);
        harness.Time.Advance(TimeSpan.FromDays(1));
        harness.Poll();
        Assert.Equal("expired", waiting.Refusal);
    }

    [Fact]
    public void A_slot_freed_after_a_deadline_whose_timer_is_late_goes_to_no_one_past_it()
    {
        // Real timers fire late; here every deadline timer fires 100 ms late.
        using var harness = new SchedulerHarness(OneSlot, new LateTimers(TimeSpan.FromMilliseconds(100)));
        var running = harness.Request("a", budget: Budget);
        var expired = harness.Request("b", budget: TimeSpan.FromSeconds(1));
        var next = harness.Request("c", budget: Budget);

        harness.Advance(TimeSpan.FromMilliseconds(1050));
        Assert.Equal(AttemptState.Waiting, expired.State);
        harness.Complete(running);

        Assert.Equal(AttemptState.Refused, expired.State);
        Assert.Equal("expired", expired.Refusal);
        Assert.Equal(AttemptState.Granted, next.State);
    }

    [Fact]
    public void Cancelling_a_queued_item_frees_its_place_at_once_and_consumes_no_slot()
    {
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 1, requestsPerSecond: 1000, maxQueuePerClient: 2));
        var running = harness.Request("a", budget: Budget);
        using var cancel = new CancellationTokenSource();
        var cancelled = harness.Request("a", budget: Budget, cancellationToken: cancel.Token);
        var kept = harness.Request("a", budget: Budget);
        Assert.Equal("queue_full", harness.Request("a", budget: Budget).Refusal);

        cancel.Cancel();
        harness.Poll();
        Assert.Equal(AttemptState.Cancelled, cancelled.State);
        Assert.Equal(cancel.Token, Assert.ThrowsAny<OperationCanceledException>(() => cancelled.Task.GetAwaiter().GetResult()).CancellationToken);
        Assert.Equal((1, 1L), (harness.Scheduler.GetStatistics().Queued, harness.Scheduler.GetStatistics().Cancelled));

        // The place is free again, and the slot goes to the item behind the cancelled one.
        var again = harness.Request("a", budget: Budget);
        Assert.Equal(AttemptState.Waiting, again.State);
        harness.Complete(running);
        Assert.Equal(AttemptState.Granted, kept.State);
        Assert.Equal(AttemptState.Waiting, again.State);
        Assert.Equal(2, harness.Scheduler.GetStatistics().Granted);
    }

    [Fact]
    public void A_token_cancelled_before_the_call_gets_a_cancelled_task_and_no_slot()
    {
        using var harness = new SchedulerHarness();
        var attempt = harness.Request("a", budget: Budget, cancellationToken: new CancellationToken(canceled: true));
        Assert.Equal(AttemptState.Cancelled, attempt.State);
        Assert.Equal((0, 0L), (harness.Scheduler.GetStatistics().Running, harness.Scheduler.GetStatistics().Granted));
    }

    [Fact]
    public void Cancelling_after_the_grant_changes_nothing()
    {
        using var harness = new SchedulerHarness(OneSlot);
        using var cancel = new CancellationTokenSource();
        var granted = harness.Request("a", budget: Budget, cancellationToken: cancel.Token);
        var waiting = harness.Request("b", budget: Budget);
        cancel.Cancel();
        harness.Poll();
        Assert.Equal(AttemptState.Granted, granted.State);
        Assert.Equal(AttemptState.Waiting, waiting.State);
        harness.Complete(granted);
        Assert.Equal(AttemptState.Granted, waiting.State);
    }

    [Fact]
    public void A_lease_disposed_twice_frees_its_slot_once()
    {
        using var harness = new SchedulerHarness(OneSlot);
        var first = harness.Request("a", budget: Budget);
        first.Lease!.Dispose();
        first.Lease.Dispose();
        var second = harness.Request("b", budget: Budget);
        var third = harness.Request("c", budget: Budget);
        Assert.Equal(AttemptState.Granted, second.State);
        Assert.Equal(AttemptState.Waiting, third.State);
    }

    [Fact]
    public void Disposal_refuses_every_waiting_item_and_later_calls_throw()
    {
        var harness = new SchedulerHarness(OneSlot);
        var running = harness.Request("a", budget: Budget);
        var waiting = new[]
        {
            harness.Request("a", budget: Budget),
            harness.Request("b", budget: Budget),
            harness.Request("c", WorkPriority.Background, TimeSpan.FromSeconds(90)),
        };

        harness.Dispose();
        harness.Poll();
        Assert.All(waiting, a =>
        {
            Assert.Equal(AttemptState.Refused, a.State);
            Assert.Equal("disposed", a.Refusal);
            Assert.Null(a.RetryAfter);
        });
        Assert.Equal(3, harness.Scheduler.GetStatistics().RefusedDisposed);

        Assert.Throws<ObjectDisposedException>(() => { _ = harness.Scheduler.AcquireAsync("a", WorkPriority.Foreground, DateTimeOffset.MaxValue, default).AsTask(); });
        Assert.Throws<ObjectDisposedException>(() => harness.Scheduler.AttemptAcquire(new UpstreamWork("a", WorkPriority.Foreground, DateTimeOffset.MaxValue)));

        // A lease still out is released harmlessly, and no timer fires into the disposed scheduler.
        running.Lease!.Dispose();
        harness.Time.Advance(TimeSpan.FromSeconds(100));
        Assert.Equal(0, harness.Scheduler.GetStatistics().Running);
    }

    [Fact]
    public async Task Asynchronous_disposal_refuses_waiting_items_too()
    {
        var harness = new SchedulerHarness(OneSlot);
        harness.Request("a", budget: Budget);
        var waiting = harness.Request("b", budget: Budget);
        await harness.Scheduler.DisposeAsync();
        harness.Poll();
        Assert.Equal("disposed", waiting.Refusal);
    }

    [Fact]
    public void Attempt_acquire_grants_a_free_slot_and_otherwise_refuses_without_queueing()
    {
        using var harness = new SchedulerHarness(OneSlot);
        using var granted = harness.Scheduler.AttemptAcquire(new UpstreamWork("a", WorkPriority.Foreground, DateTimeOffset.MaxValue));
        Assert.True(granted.IsAcquired);

        using var refused = harness.Scheduler.AttemptAcquire(new UpstreamWork("b", WorkPriority.Foreground, DateTimeOffset.MaxValue));
        Assert.False(refused.IsAcquired);
        Assert.True(refused.TryGetMetadata(UpstreamScheduler.RefusalMetadata, out var reason));
        Assert.Equal("no_capacity", reason);
        Assert.True(refused.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(1), retryAfter);
        Assert.Equal(0, harness.Scheduler.GetStatistics().Queued);

        Assert.Throws<ArgumentOutOfRangeException>(() => harness.Scheduler.AttemptAcquire(new UpstreamWork("a", WorkPriority.Foreground, DateTimeOffset.MaxValue), 2));
    }

    /// <summary>A fake clock whose new timers fire <paramref name="lateBy"/> after they are due, as loaded machines do.</summary>
    private sealed class LateTimers(TimeSpan lateBy) : FakeTimeProvider
    {
        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            base.CreateTimer(callback, state, dueTime == Timeout.InfiniteTimeSpan ? dueTime : dueTime + lateBy, period);
    }
}
