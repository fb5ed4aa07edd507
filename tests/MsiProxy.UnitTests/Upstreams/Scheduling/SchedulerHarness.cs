using System.Threading.RateLimiting;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.UnitTests.Upstreams.Scheduling;

internal enum AttemptState
{
    Waiting,
    Granted,
    Refused,
    Cancelled,
}

/// <summary>One call to <see cref="UpstreamScheduler.AcquireAsync(string, WorkPriority, DateTimeOffset, CancellationToken)"/> and what became of it.</summary>
internal sealed class Attempt(string client, WorkPriority priority, DateTimeOffset deadline, int sequence, DateTimeOffset requestedAt, Task<RateLimitLease> task)
{
    public string Client { get; } = client;
    public WorkPriority Priority { get; } = priority;
    public DateTimeOffset Deadline { get; } = deadline;

    /// <summary>Arrival order over the whole test.</summary>
    public int Sequence { get; } = sequence;

    public DateTimeOffset RequestedAt { get; } = requestedAt;
    public Task<RateLimitLease> Task { get; } = task;
    public AttemptState State { get; set; }
    public DateTimeOffset? ResolvedAt { get; set; }
    public RateLimitLease? Lease { get; set; }
    public bool Completed { get; set; }
    public string? Refusal { get; set; }
    public TimeSpan? RetryAfter { get; set; }

    public override string ToString() => $"{Client}#{Sequence} {Priority} {State}";
}

/// <summary>
/// Drives an <see cref="UpstreamScheduler"/> on a <see cref="FakeTimeProvider"/> and records, after every step, which
/// attempts were granted or refused and when. Time moves only in whole milliseconds and is polled after each one, so
/// every grant is seen at the instant it happened (the scheduler's timers fire on millisecond boundaries).
/// Concurrency is counted here from leases handed out and disposed, independently of the scheduler's own statistics;
/// a disposed lease holds its slot for <see cref="UpstreamSchedulerOptions.ReleaseDelay"/> more (<see cref="HeldCount"/>).
/// </summary>
internal sealed class SchedulerHarness : IDisposable
{
    private readonly List<Attempt> _waiting = [];
    private readonly List<Attempt> _running = [];
    private readonly List<(DateTimeOffset FreeAt, WorkPriority Priority)> _releasing = [];
    private readonly TimeSpan _releaseDelay;

    public SchedulerHarness(UpstreamSchedulerOptions? options = null, FakeTimeProvider? time = null)
    {
        Time = time ?? new FakeTimeProvider();
        options ??= new UpstreamSchedulerOptions();
        Scheduler = new UpstreamScheduler(options, Time);
        _releaseDelay = options.ReleaseDelay;
        Start = Time.GetUtcNow();
    }

    public FakeTimeProvider Time { get; }
    public UpstreamScheduler Scheduler { get; }
    public DateTimeOffset Start { get; }
    public DateTimeOffset Now => Time.GetUtcNow();
    public List<Attempt> Attempts { get; } = [];
    public List<Attempt> Grants { get; } = [];
    public IReadOnlyList<Attempt> Running => _running;
    public int RunningCount { get; private set; }
    public int RunningBackgroundCount { get; private set; }
    public int MaxRunning { get; private set; }
    public int MaxRunningBackground { get; private set; }
    public IReadOnlyList<Attempt> Waiting => _waiting;

    /// <summary>Slots taken: attempts running, and ended attempts whose release delay has not passed yet.</summary>
    public int HeldCount => RunningCount + _releasing.Count(r => r.FreeAt > Now);

    public int HeldBackgroundCount => RunningBackgroundCount + _releasing.Count(r => r.FreeAt > Now && r.Priority == WorkPriority.Background);

    public Attempt Request(string client, WorkPriority priority = WorkPriority.Foreground, TimeSpan? budget = null, CancellationToken cancellationToken = default)
    {
        var deadline = budget is { } b ? Now + b : DateTimeOffset.MaxValue;
        var attempt = new Attempt(client, priority, deadline, Attempts.Count, Now,
            Scheduler.AcquireAsync(client, priority, deadline, cancellationToken).AsTask());
        Attempts.Add(attempt);
        _waiting.Add(attempt);
        Poll();
        return attempt;
    }

    public List<Attempt> RequestMany(string client, int count, WorkPriority priority = WorkPriority.Foreground, TimeSpan? budget = null) =>
        Enumerable.Range(0, count).Select(_ => Request(client, priority, budget)).ToList();

    /// <summary>Ends a granted attempt (disposes its lease, as Polly does when the attempt returns).</summary>
    public void Complete(Attempt attempt)
    {
        Assert.Equal(AttemptState.Granted, attempt.State);
        Assert.False(attempt.Completed, $"{attempt} completed twice");
        attempt.Completed = true;
        _running.Remove(attempt);
        RunningCount--;
        if (attempt.Priority == WorkPriority.Background)
        {
            RunningBackgroundCount--;
        }

        if (_releaseDelay > TimeSpan.Zero)
        {
            _releasing.Add((Now + _releaseDelay, attempt.Priority));
        }

        attempt.Lease!.Dispose();
        Poll();
    }

    public void CompleteOldestRunning() => Complete(_running[0]);

    /// <summary>Moves time on one millisecond at a time, polling after each and running <paramref name="eachMillisecond"/>.</summary>
    public void Advance(TimeSpan by, Action? eachMillisecond = null)
    {
        var until = Now + by;
        while (Now < until)
        {
            Time.Advance(TimeSpan.FromMilliseconds(1));
            Poll();
            eachMillisecond?.Invoke();
        }
    }

    /// <summary>Advances until <paramref name="done"/> holds; fails if it does not within <paramref name="limit"/>.</summary>
    public void AdvanceUntil(Func<bool> done, TimeSpan limit, Action? eachMillisecond = null)
    {
        var until = Now + limit;
        while (!done())
        {
            Assert.True(Now < until, $"not done within {limit}");
            Time.Advance(TimeSpan.FromMilliseconds(1));
            Poll();
            eachMillisecond?.Invoke();
        }
    }

    public void Poll()
    {
        for (var i = 0; i < _waiting.Count; i++)
        {
            var attempt = _waiting[i];
            if (!attempt.Task.IsCompleted)
            {
                continue;
            }

            _waiting.RemoveAt(i--);
            attempt.ResolvedAt = Now;
            if (attempt.Task.IsCanceled)
            {
                attempt.State = AttemptState.Cancelled;
                continue;
            }

            var lease = attempt.Task.Result;
            attempt.Lease = lease;
            if (lease.IsAcquired)
            {
                attempt.State = AttemptState.Granted;
                Grants.Add(attempt);
                _running.Add(attempt);
                RunningCount++;
                if (attempt.Priority == WorkPriority.Background)
                {
                    RunningBackgroundCount++;
                }

                MaxRunning = Math.Max(MaxRunning, RunningCount);
                MaxRunningBackground = Math.Max(MaxRunningBackground, RunningBackgroundCount);
            }
            else
            {
                attempt.State = AttemptState.Refused;
                attempt.Refusal = lease.TryGetMetadata(UpstreamScheduler.RefusalMetadata, out var reason) ? reason : null;
                attempt.RetryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : null;
                Assert.NotNull(attempt.Refusal);
            }
        }
    }

    /// <summary>The most grants (matching <paramref name="which"/>) that started within any half-open interval of one second.</summary>
    public int MostStartsInOneSecond(Func<Attempt, bool>? which = null)
    {
        var starts = Grants.Where(which ?? (_ => true)).Select(a => a.ResolvedAt!.Value).Order().ToList();
        var most = 0;
        for (int first = 0, last = 0; first < starts.Count; first++)
        {
            while (last < starts.Count && starts[last] < starts[first].AddSeconds(1))
            {
                last++;
            }

            most = Math.Max(most, last - first);
        }

        return most;
    }

    /// <summary>Grants that started in (now − 1 s, now] — the window the next start is judged by.</summary>
    public int StartsInLastSecond()
    {
        var count = 0;
        for (var i = Grants.Count - 1; i >= 0 && Grants[i].ResolvedAt > Now.AddSeconds(-1); i--)
        {
            count++;
        }

        return count;
    }

    public void Dispose() => Scheduler.Dispose();
}
