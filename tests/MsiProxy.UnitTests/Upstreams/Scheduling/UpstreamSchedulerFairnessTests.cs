using MsiProxy.Configuration;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>
/// Order and limits of the fair queue, on a fake clock: who is granted next, how many run at once, how many start per
/// second, and what background work may take. Counts and order, never wall-clock time.
/// </summary>
public sealed class UpstreamSchedulerFairnessTests
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(8);

    [Fact]
    public void A_quiet_client_is_served_within_the_next_round_not_after_a_floods_backlog()
    {
        // The rate is out of the way here (1000/s): only the order of grants as slots free up is under test.
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 5, requestsPerSecond: 1000, maxQueuePerClient: 200));
        var flood = harness.RequestMany("flood", 100, budget: Budget);
        Assert.Equal(5, harness.RunningCount);
        var quiet = harness.RequestMany("quiet", 3, budget: Budget);
        Assert.All(quiet, a => Assert.Equal(AttemptState.Waiting, a.State));

        var order = new List<string>();
        while (harness.Running.Any())
        {
            var before = harness.Grants.Count;
            harness.CompleteOldestRunning();
            Assert.InRange(harness.Grants.Count - before, 0, 1);
            order.AddRange(harness.Grants.Skip(before).Select(a => a.Client));
        }

        // One grant per client per round: the quiet client's three are interleaved with the flood's next three.
        Assert.Equal(["flood", "quiet", "flood", "quiet", "flood", "quiet"], order.Take(6));
        Assert.Equal(98, order.Count);
        Assert.All(harness.Attempts, a => Assert.Equal(AttemptState.Granted, a.State));

        // FIFO within each client.
        Assert.Equal(flood.Select(a => a.Sequence), harness.Grants.Where(a => a.Client == "flood").Select(a => a.Sequence));
        Assert.Equal(quiet.Select(a => a.Sequence), harness.Grants.Where(a => a.Client == "quiet").Select(a => a.Sequence));
    }

    [Fact]
    public void Under_the_rate_limit_a_quiet_client_still_waits_only_for_its_turn()
    {
        // Defaults (5 at a time, 20/s); the upstream answers in 10 ms, so the rate is what holds the flood back.
        using var harness = new SchedulerHarness();
        harness.RequestMany("flood", 64, budget: Budget);
        harness.Advance(TimeSpan.FromMilliseconds(500), () => CompleteOlderThan(harness, TimeSpan.FromMilliseconds(10)));
        var grantsBefore = harness.Grants.Count;
        var quiet = harness.RequestMany("quiet", 3, budget: Budget);

        harness.AdvanceUntil(() => quiet.All(a => a.State == AttemptState.Granted), TimeSpan.FromSeconds(3),
            () => CompleteOlderThan(harness, TimeSpan.FromMilliseconds(10)));

        // In grant order, the quiet client's items are the 1st/2nd, 3rd/4th and 5th/6th after it arrived.
        var after = harness.Grants.Skip(grantsBefore).Select(a => a.Client).ToList();
        Assert.InRange(after.LastIndexOf("quiet"), 0, 5);
        Assert.Equal(3, after.Take(6).Count(c => c == "quiet"));
    }

    [Fact]
    public void Concurrency_never_exceeds_the_limit_and_is_used_in_full()
    {
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 5, requestsPerSecond: 1000));
        var random = new Random(1234);
        foreach (var client in new[] { "a", "b", "c" })
        {
            harness.RequestMany(client, 30, budget: TimeSpan.FromSeconds(60));
        }

        harness.AdvanceUntil(() => harness.Grants.Count == 90 && !harness.Running.Any(), TimeSpan.FromSeconds(30), () =>
        {
            // Each running attempt ends with probability 1/50 per millisecond.
            foreach (var attempt in harness.Running.Where(_ => random.Next(50) == 0).ToList())
            {
                harness.Complete(attempt);
            }

            Assert.InRange(harness.RunningCount, 0, 5);
            Assert.Equal(harness.RunningCount, harness.Scheduler.GetStatistics().Running);

            // Work-conserving: with work waiting, every slot is busy.
            if (harness.Waiting.Count > 0)
            {
                Assert.Equal(5, harness.RunningCount);
            }
        });

        Assert.Equal(5, harness.MaxRunning);
    }

    [Fact]
    public void No_one_second_interval_holds_more_starts_than_the_rate_and_the_rate_is_used_in_full()
    {
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 5, requestsPerSecond: 20));
        foreach (var client in new[] { "a", "b", "c", "d" })
        {
            harness.RequestMany(client, 25, budget: TimeSpan.FromSeconds(20));
        }

        // An upstream that answers at once: only the rate limits the starts.
        CompleteOlderThan(harness, TimeSpan.Zero);
        harness.AdvanceUntil(() => harness.Grants.Count == 100, TimeSpan.FromSeconds(10), () => CompleteOlderThan(harness, TimeSpan.Zero));

        Assert.Equal(20, harness.MostStartsInOneSecond());

        // 100 starts at 20 per second: 20 at 0 s, 1 s, 2 s, 3 s and 4 s — not later.
        Assert.Equal(TimeSpan.FromSeconds(4), harness.Grants[^1].ResolvedAt - harness.Start);
        Assert.Equal(0, harness.Scheduler.GetStatistics().Queued);
    }

    [Fact]
    public void A_burst_of_40_distinct_items_from_one_client_with_nobody_else_waiting_is_all_granted()
    {
        var options = UpstreamSchedulerOptions.From(new ResilienceOptions());
        using var harness = new SchedulerHarness(options);
        var burst = harness.RequestMany("10.0.0.0/24", 40, budget: new ResilienceOptions().RequestBudget);

        // IMDS answering each in 50 ms.
        harness.AdvanceUntil(() => burst.All(a => a.State != AttemptState.Waiting), TimeSpan.FromSeconds(8),
            () => CompleteOlderThan(harness, TimeSpan.FromMilliseconds(50)));

        Assert.All(burst, a => Assert.Equal(AttemptState.Granted, a.State));
        var statistics = harness.Scheduler.GetStatistics();
        Assert.Equal(0, SchedulerRefusals.All.Sum(statistics.Refused));
        Assert.Equal(40, statistics.Granted);
        Assert.InRange(burst.Max(a => a.ResolvedAt!.Value) - harness.Start, TimeSpan.Zero, TimeSpan.FromSeconds(2));
        Assert.True(harness.MaxRunning <= 5);
        Assert.True(harness.MostStartsInOneSecond() <= 20);
    }

    [Fact]
    public void Background_work_takes_free_slots_but_never_the_last_one()
    {
        using var harness = new SchedulerHarness();
        var refreshes = harness.RequestMany("refresh", 7, WorkPriority.Background, TimeSpan.FromSeconds(90));

        // Four of five slots: the fifth stays free although background work waits.
        Assert.Equal(4, refreshes.Count(a => a.State == AttemptState.Granted));
        Assert.Equal(4, harness.RunningCount);

        // A caller arriving now starts at once, on the slot background work left.
        var caller = harness.Request("app", budget: Budget);
        Assert.Equal(AttemptState.Granted, caller.State);
        Assert.Equal(5, harness.RunningCount);

        // While a caller waits, a freed slot goes to it, not to the waiting refreshes.
        var waitingCaller = harness.Request("app", budget: Budget);
        Assert.Equal(AttemptState.Waiting, waitingCaller.State);
        harness.Complete(refreshes[0]);
        Assert.Equal(AttemptState.Granted, waitingCaller.State);
        Assert.Equal(3, refreshes.Count(a => a.State == AttemptState.Waiting));

        // With no caller waiting, background work gets freed slots again — up to its cap of four.
        harness.Complete(refreshes[1]);
        Assert.Equal(2, refreshes.Count(a => a.State == AttemptState.Waiting));
        harness.Complete(caller);
        Assert.Equal(1, refreshes.Count(a => a.State == AttemptState.Waiting));

        // Four refreshes run and one slot is free: the last refresh waits for a background slot.
        harness.Complete(waitingCaller);
        Assert.Equal(4, harness.RunningCount);
        Assert.Equal(1, refreshes.Count(a => a.State == AttemptState.Waiting));
        Assert.Equal(4, harness.MaxRunningBackground);
    }

    [Fact]
    public void Background_work_never_starts_while_foreground_work_waits_even_with_its_cap_free()
    {
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 5, requestsPerSecond: 1000));
        var callers = harness.RequestMany("app", 8, budget: Budget);
        var refresh = harness.Request("refresh", WorkPriority.Background, TimeSpan.FromSeconds(90));

        while (callers.Any(a => a.State == AttemptState.Waiting))
        {
            Assert.Equal(AttemptState.Waiting, refresh.State);
            harness.CompleteOldestRunning();
        }

        Assert.Equal(AttemptState.Waiting, refresh.State);
        harness.CompleteOldestRunning();
        Assert.Equal(AttemptState.Granted, refresh.State);
    }

    [Fact]
    public void Background_work_leaves_part_of_every_second_to_callers()
    {
        // 20/s with 4 of 5 slots for background: background may start 16 per second, callers keep 4.
        using var harness = new SchedulerHarness();
        Assert.Equal(16, harness.Scheduler.Options.MaxBackgroundRequestsPerSecond);
        harness.RequestMany("prefetch", 50, WorkPriority.Background, TimeSpan.FromSeconds(90));
        harness.Advance(TimeSpan.FromMilliseconds(2500), () => CompleteOlderThan(harness, TimeSpan.Zero));
        Assert.Equal(16, harness.MostStartsInOneSecond());

        // Mid-second, with 16 background starts in the window, a caller still starts at once.
        Assert.Equal(16, harness.StartsInLastSecond());
        var caller = harness.Request("app", budget: Budget);
        Assert.Equal(AttemptState.Granted, caller.State);
    }

    [Fact]
    public void Background_clients_are_served_round_robin_too()
    {
        using var harness = new SchedulerHarness(new UpstreamSchedulerOptions(maxConcurrency: 2, requestsPerSecond: 1000, maxBackgroundConcurrency: 1));
        harness.RequestMany("refresh-a", 4, WorkPriority.Background);
        harness.RequestMany("refresh-b", 2, WorkPriority.Background);
        while (harness.Running.Any())
        {
            harness.CompleteOldestRunning();
        }

        // The first started at once; then the lanes alternate, refresh-a's first because it started waiting first.
        Assert.Equal(["refresh-a", "refresh-a", "refresh-b", "refresh-a", "refresh-b", "refresh-a"], harness.Grants.Select(a => a.Client));
        Assert.Equal(1, harness.MaxRunningBackground);
    }

    [Fact]
    public void Options_come_from_the_resilience_settings_with_background_shares_derived()
    {
        var options = UpstreamSchedulerOptions.From(new ResilienceOptions { MaxConcurrency = 5, RequestsPerSecond = 20, MaxQueuePerClient = 32 });
        Assert.Equal((5, 20, 32, 4, 16), (options.MaxConcurrency, options.RequestsPerSecond, options.MaxQueuePerClient, options.MaxBackgroundConcurrency, options.MaxBackgroundRequestsPerSecond));
        Assert.Equal(64, new ResilienceOptions().MaxQueuePerClient);

        // One slot: background still gets it (tokens must be refreshed), and a share of the rate.
        var single = new UpstreamSchedulerOptions(maxConcurrency: 1, requestsPerSecond: 3);
        Assert.Equal((1, 3), (single.MaxBackgroundConcurrency, single.MaxBackgroundRequestsPerSecond));

        Assert.Throws<ArgumentOutOfRangeException>(() => new UpstreamSchedulerOptions(maxConcurrency: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpstreamSchedulerOptions(requestsPerSecond: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpstreamSchedulerOptions(maxQueuePerClient: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpstreamSchedulerOptions(maxBackgroundConcurrency: 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UpstreamSchedulerOptions(maxBackgroundRequestsPerSecond: 21));
    }

    /// <summary>Ends every attempt running for at least <paramref name="age"/>, including ones its ending lets start (age 0).</summary>
    internal static void CompleteOlderThan(SchedulerHarness harness, TimeSpan age)
    {
        while (harness.Running.FirstOrDefault(a => harness.Now - a.ResolvedAt >= age) is { } attempt)
        {
            harness.Complete(attempt);
        }
    }
}
