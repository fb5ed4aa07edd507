using CsCheck;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

/// <summary>
/// Random interleavings of arrivals (four clients, both priorities, random budgets), completions, cancellations and
/// the passing of time, under random limits and release delays. After every step and every millisecond the limits hold
/// (a slot counts until its release delay has passed) and the queue is work-conserving; at the end every item was
/// granted before its deadline, refused with a reason, or cancelled — none is lost, none waits forever.
/// </summary>
public sealed class UpstreamSchedulerPropertyTests
{
    private static readonly string[] Clients = ["a", "b", "c", "d"];

    private static readonly Gen<UpstreamSchedulerOptions> Limits = Gen.Select(Gen.Int[1, 6], Gen.Int[2, 25], Gen.Int[1, 8], Gen.Int[0, 6], Gen.Int[0, 30],
        (concurrency, rate, queue, background, releaseMs) => new UpstreamSchedulerOptions(concurrency, rate, queue,
            background == 0 ? null : Math.Min(background, concurrency), releaseDelay: TimeSpan.FromMilliseconds(releaseMs)));

    private static readonly Gen<Step> Steps = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 3], Gen.Int[0, 3], Gen.Int[1, 4000], Gen.Int[0, 1000], Gen.Int[1, 300],
        (kind, client, priority, budget, pick, millis) => new Step(kind switch
        {
            <= 4 => Action.Arrive,
            <= 6 => Action.Complete,
            7 => Action.Cancel,
            _ => Action.Advance,
        }, Clients[client], priority == 0 ? WorkPriority.Background : WorkPriority.Foreground, budget, pick, millis));

    private enum Action
    {
        Arrive,
        Complete,
        Cancel,
        Advance,
    }

    private readonly record struct Step(Action Action, string Client, WorkPriority Priority, int BudgetMs, int Pick, int Millis);

    [Fact]
    public void Limits_hold_the_queue_is_work_conserving_and_no_item_is_lost()
    {
        Gen.Select(Limits, Steps.Array[1, 120]).Sample((options, steps) => Run(options, steps), iter: 300);
    }

    private static void Run(UpstreamSchedulerOptions options, Step[] steps)
    {
        using var harness = new SchedulerHarness(options);
        var cancellations = new Dictionary<Attempt, CancellationTokenSource>();
        void Check() => CheckInvariants(harness, options);

        foreach (var step in steps)
        {
            switch (step.Action)
            {
                case Action.Arrive:
                    var queuedBefore = harness.Waiting.Count(a => a.Client == step.Client && a.Priority == step.Priority);
                    var cancel = new CancellationTokenSource();
                    var attempt = harness.Request(step.Client, step.Priority, TimeSpan.FromMilliseconds(step.BudgetMs), cancel.Token);
                    cancellations[attempt] = cancel;
                    if (attempt.Refusal == "queue_full")
                    {
                        Assert.Equal(options.MaxQueuePerClient, queuedBefore);
                    }

                    if (attempt.Refusal == "over_budget")
                    {
                        // Refused only when even the estimate's lower bound ends after the budget.
                        Assert.True(attempt.RetryAfter > attempt.Deadline - attempt.RequestedAt, $"{attempt} refused with {attempt.RetryAfter}");
                    }

                    break;
                case Action.Complete when harness.Running.Count > 0:
                    harness.Complete(harness.Running[step.Pick % harness.Running.Count]);
                    break;
                case Action.Cancel when harness.Waiting.Count > 0:
                    var waiting = harness.Waiting[step.Pick % harness.Waiting.Count];
                    cancellations[waiting].Cancel();
                    harness.Poll();
                    Assert.Equal(AttemptState.Cancelled, waiting.State);
                    break;
                case Action.Advance:
                    harness.Advance(TimeSpan.FromMilliseconds(step.Millis), Check);
                    break;
            }

            Check();
        }

        // Drain: the upstream answers everything at once from now on; every item must be resolved by its deadline.
        var lastDeadline = harness.Attempts.Select(a => a.Deadline).DefaultIfEmpty(harness.Now).Max();
        void CompleteAll()
        {
            while (harness.Running.Count > 0)
            {
                harness.Complete(harness.Running[0]);
            }

            Check();
        }

        CompleteAll();
        while (harness.Waiting.Count > 0)
        {
            Assert.True(harness.Now <= lastDeadline, "an item outlived every deadline");
            harness.Advance(TimeSpan.FromMilliseconds(1), CompleteAll);
        }

        harness.Advance(options.ReleaseDelay, Check); // the last slots come free
        var statistics = harness.Scheduler.GetStatistics();
        Assert.Equal((0, 0), (statistics.Queued, statistics.Running));
        Assert.Equal(harness.Grants.Count, statistics.Granted);
        Assert.Equal(harness.Attempts.Count(a => a.State == AttemptState.Cancelled), statistics.Cancelled);
        foreach (var attempt in harness.Attempts)
        {
            switch (attempt.State)
            {
                case AttemptState.Granted:
                    Assert.True(attempt.ResolvedAt < attempt.Deadline, $"{attempt} granted at its deadline or later");
                    break;
                case AttemptState.Refused:
                    Assert.Contains(attempt.Refusal, (string[])["queue_full", "over_budget", "expired"]);
                    Assert.True(attempt.RetryAfter >= UpstreamScheduler.MinRetryAfter);
                    if (attempt.Refusal == "expired")
                    {
                        Assert.Equal(attempt.Deadline, attempt.ResolvedAt);
                    }

                    break;
                case AttemptState.Cancelled:
                    break;
                default:
                    Assert.Fail($"{attempt} never resolved");
                    break;
            }
        }

        foreach (var refusal in (SchedulerRefusal[])[SchedulerRefusal.QueueFull, SchedulerRefusal.OverBudget, SchedulerRefusal.Expired])
        {
            Assert.Equal(harness.Attempts.Count(a => a.Refusal == refusal.Name()), statistics.Refused(refusal));
        }

        // FIFO within each client's lane.
        foreach (var lane in harness.Grants.GroupBy(a => (a.Client, a.Priority)))
        {
            Assert.Equal(lane.Select(a => a.Sequence).Order(), lane.Select(a => a.Sequence));
        }

        Assert.InRange(harness.MostStartsInOneSecond(), 0, options.RequestsPerSecond);
        Assert.InRange(harness.MostStartsInOneSecond(a => a.Priority == WorkPriority.Background), 0, options.MaxBackgroundRequestsPerSecond);

        foreach (var cancellation in cancellations.Values)
        {
            cancellation.Dispose();
        }
    }

    private static void CheckInvariants(SchedulerHarness harness, UpstreamSchedulerOptions options)
    {
        Assert.InRange(harness.HeldCount, 0, options.MaxConcurrency);
        Assert.InRange(harness.HeldBackgroundCount, 0, options.MaxBackgroundConcurrency);

        var statistics = harness.Scheduler.GetStatistics();
        Assert.Equal(harness.HeldCount, statistics.Running);
        Assert.Equal(harness.HeldBackgroundCount, statistics.RunningBackground);
        Assert.Equal(harness.Waiting.Count, statistics.Queued);
        Assert.Equal(harness.Waiting.Count(a => a.Priority == WorkPriority.Foreground), statistics.QueuedForeground);
        Assert.Equal(statistics.StartsInLastSecond, harness.StartsInLastSecond());

        // Work-conserving: whatever waits while a slot is free is held back by the rate, nothing else.
        if (statistics.QueuedForeground > 0 && statistics.Running < options.MaxConcurrency)
        {
            Assert.Equal(options.RequestsPerSecond, statistics.StartsInLastSecond);
        }

        if (statistics.QueuedForeground == 0 && statistics.QueuedBackground > 0 && statistics.Running < options.MaxConcurrency
            && statistics.RunningBackground < options.MaxBackgroundConcurrency)
        {
            Assert.True(statistics.StartsInLastSecond >= options.MaxBackgroundRequestsPerSecond,
                $"background waits with {statistics.StartsInLastSecond} starts in the last second");
        }
    }
}
