using System.Threading.RateLimiting;

namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// A work-conserving fair queue in front of the upstream: every upstream attempt (token miss, refresh, prefetch,
/// forwarded request; each retry again) takes a slot = one of <see cref="UpstreamSchedulerOptions.MaxConcurrency"/>
/// concurrency permits for as long as the attempt runs, plus one start within the rate
/// (<see cref="UpstreamSchedulerOptions.RequestsPerSecond"/> in any one-second interval, <see cref="SlidingStartWindow"/>).
/// <list type="bullet">
/// <item>Work that cannot start at once waits in its client's own FIFO lane (one per client and priority). Lanes with
/// work are served round robin, one grant per lane per round, so a client flooding the proxy delays another client by
/// at most one grant per round, whatever its backlog.</item>
/// <item><see cref="WorkPriority.Background"/> work is granted only while no foreground work waits, with at most
/// <see cref="UpstreamSchedulerOptions.MaxBackgroundConcurrency"/> running and
/// <see cref="UpstreamSchedulerOptions.MaxBackgroundRequestsPerSecond"/> started per second, so a caller never finds
/// every slot or the whole second's rate taken by refreshes.</item>
/// <item>Work-conserving: nothing waits while a slot is free and the rate allows a start; a refusal goes only to a
/// client whose own lane is full (<see cref="SchedulerRefusal.QueueFull"/>), whose estimated wait already ends after
/// its deadline (<see cref="SchedulerRefusal.OverBudget"/>, see <see cref="EstimateWait"/>), or whose item waited past its
/// deadline (<see cref="SchedulerRefusal.Expired"/>). Every refusal carries Retry-After (at least 1 s) and a reason.</item>
/// </list>
/// It is a <see cref="PartitionedRateLimiter{TResource}"/> of <see cref="UpstreamWork"/>, so it plugs into Polly's
/// rate-limiter strategy as <c>RateLimiter = args =&gt; scheduler.AcquireAsync(work, 1, args.Context.CancellationToken)</c>;
/// Polly disposes the lease when the attempt ends.
/// <para>
/// Thread safety: one lock guards all state. Every operation under it is O(1) (amortised, for the rate window) except
/// the wait estimate, which is O(lanes with work) and runs only when an item has to queue. Nothing under the lock
/// blocks, allocates more than the lease (or a waiting item's waiter, lane and timer), or runs foreign code: task
/// continuations run asynchronously, timers are armed at least 1 ms ahead so a fake clock never fires them inline, and
/// cancellation is registered after the lock is left. An ended attempt's slot is handed back lazily, by the next
/// operation that looks at the slots once its release delay has passed: one timer wakes the scheduler, and only for
/// work that waits. A single lock keeps the
/// round-robin order, both limits and the statistics trivially consistent; at IMDS's 20 attempts per second it is never
/// contended enough to matter.
/// </para>
/// Time comes only from the <see cref="TimeProvider"/>: monotonic timestamps for the rate, its UTC clock for deadlines,
/// its timers for waking up — no thread of its own.
/// </summary>
internal sealed class UpstreamScheduler : PartitionedRateLimiter<UpstreamWork>
{
    /// <summary>Metadata on a refused lease: the <see cref="SchedulerRefusal"/> as its name (<c>queue_full</c>, <c>over_budget</c>, …).</summary>
    public static readonly MetadataName<string> RefusalMetadata = MetadataName.Create<string>("msiproxy.refusal");

    /// <summary>Clients are told to come back no sooner than this (SDKs treat smaller values as "now").</summary>
    public static readonly TimeSpan MinRetryAfter = TimeSpan.FromSeconds(1);

    private static readonly RefusedSlot DisposedSlot = new(SchedulerRefusal.Disposed, null);

    /// <summary>Ended attempts whose slot the upstream may still count, oldest first: when it is free, and whose it was.</summary>
    private readonly Queue<(long FreeAt, WorkPriority Priority)> _releasing = new();
    private readonly long _releaseDelayTicks;
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly SlidingStartWindow _starts;
    private readonly int _backgroundReserve;
    private readonly PriorityClass _foreground = new(WorkPriority.Foreground);
    private readonly PriorityClass _background = new(WorkPriority.Background);
    /// <summary>Wakes waiting work when the next start is allowed (the rate) or the next slot is free (a release).</summary>
    private readonly ITimer _wakeTimer;
    private readonly long[] _refused = new long[SchedulerRefusals.All.Length];
    private long _granted;
    private long _cancelled;
    private bool _disposed;

    public UpstreamScheduler(UpstreamSchedulerOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        Options = options;
        _time = time;
        _starts = new SlidingStartWindow(options.RequestsPerSecond, (long)(options.RateWindow.TotalSeconds * time.TimestampFrequency));
        _backgroundReserve = options.RequestsPerSecond - options.MaxBackgroundRequestsPerSecond;
        _releaseDelayTicks = (long)Math.Ceiling(options.ReleaseDelay.TotalSeconds * time.TimestampFrequency);
        _wakeTimer = CreateTimer(static state => ((UpstreamScheduler)state!).OnWakeTimer(), this, Timeout.InfiniteTimeSpan);
    }

    public UpstreamSchedulerOptions Options { get; }

    /// <summary>The same as <see cref="PartitionedRateLimiter{TResource}.AcquireAsync"/> with one permit, for callers outside Polly.</summary>
    public ValueTask<RateLimitLease> AcquireAsync(string client, WorkPriority priority, DateTimeOffset deadline, CancellationToken cancellationToken) =>
        AcquireAsync(new UpstreamWork(client, priority, deadline), 1, cancellationToken);

    public UpstreamSchedulerStatistics GetStatistics()
    {
        lock (_lock)
        {
            Settle(_time.GetTimestamp());
            return new UpstreamSchedulerStatistics(
                QueuedForeground: _foreground.Waiting,
                QueuedBackground: _background.Waiting,
                RunningForeground: _foreground.Running,
                RunningBackground: _background.Running,
                ForegroundClientsWaiting: _foreground.Ring.Count,
                BackgroundClientsWaiting: _background.Ring.Count,
                StartsInLastSecond: _starts.InWindow(_time.GetTimestamp()),
                Granted: _granted,
                Cancelled: _cancelled,
                RefusedQueueFull: _refused[(int)SchedulerRefusal.QueueFull],
                RefusedOverBudget: _refused[(int)SchedulerRefusal.OverBudget],
                RefusedExpired: _refused[(int)SchedulerRefusal.Expired],
                RefusedNoCapacity: _refused[(int)SchedulerRefusal.NoCapacity],
                RefusedDisposed: _refused[(int)SchedulerRefusal.Disposed]);
        }
    }

    /// <summary>Free concurrency permits, and what the given client has waiting at that priority.</summary>
    public override RateLimiterStatistics? GetStatistics(UpstreamWork resource)
    {
        lock (_lock)
        {
            Settle(_time.GetTimestamp());
            var queues = Of(resource.Priority);
            return new RateLimiterStatistics
            {
                CurrentAvailablePermits = Options.MaxConcurrency - Running,
                CurrentQueuedCount = resource.Client is not null && queues.Lanes.TryGetValue(resource.Client, out var lane) ? lane.Count : 0,
                TotalSuccessfulLeases = _granted,
                TotalFailedLeases = _refused.Sum(),
            };
        }
    }

    /// <summary>Grants at once if the slot is free and nobody of that priority waits; never queues.</summary>
    protected override RateLimitLease AttemptAcquireCore(UpstreamWork resource, int permitCount)
    {
        Validate(resource, permitCount);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = _time.GetTimestamp();
            Settle(now);
            if (resource.Deadline <= _time.GetUtcNow())
            {
                return Refuse(SchedulerRefusal.OverBudget, MinRetryAfter);
            }

            if (CanStartNow(resource.Priority, now))
            {
                return Grant(Of(resource.Priority), now);
            }

            return Refuse(SchedulerRefusal.NoCapacity, RetryAfterForNewItem(Of(resource.Priority), resource.Client, now));
        }
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(UpstreamWork resource, int permitCount, CancellationToken cancellationToken)
    {
        Validate(resource, permitCount);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<RateLimitLease>(cancellationToken);
        }

        Waiter waiter;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var nowUtc = _time.GetUtcNow();
            var now = _time.GetTimestamp();
            Settle(now);
            if (resource.Deadline <= nowUtc)
            {
                return new ValueTask<RateLimitLease>(Refuse(SchedulerRefusal.OverBudget, MinRetryAfter));
            }

            var queues = Of(resource.Priority);
            if (CanStartNow(resource.Priority, now))
            {
                return new ValueTask<RateLimitLease>(Grant(queues, now));
            }

            var lane = queues.Lanes.GetValueOrDefault(resource.Client);
            if (lane is not null && lane.Count >= Options.MaxQueuePerClient)
            {
                // A place frees when this lane's head is granted.
                return new ValueTask<RateLimitLease>(Refuse(SchedulerRefusal.QueueFull, RetryAfter(EstimateWait(queues, lane, 1, now))));
            }

            var wait = EstimateWait(queues, lane, (lane?.Count ?? 0) + 1, now);
            if (nowUtc + wait > resource.Deadline)
            {
                return new ValueTask<RateLimitLease>(Refuse(SchedulerRefusal.OverBudget, RetryAfter(wait)));
            }

            if (lane is null)
            {
                lane = new Lane(resource.Client, resource.Priority);
                queues.Lanes.Add(resource.Client, lane);
                queues.Ring.AddLast(lane);
            }

            waiter = new Waiter(this, lane, resource.Deadline, cancellationToken);
            lane.Enqueue(waiter);
            queues.Waiting++;
            if (resource.Deadline != DateTimeOffset.MaxValue)
            {
                waiter.DeadlineTimer = CreateTimer(static state => ((Waiter)state!).Owner.OnDeadline((Waiter)state), waiter,
                    TimerDue(resource.Deadline - nowUtc));
            }

            // A slot can be free while others wait if the wake timer has not fired yet (the rate, a release); serve in
            // round-robin order.
            Dispatch();
        }

        if (cancellationToken.CanBeCanceled)
        {
            // Outside the lock: a token cancelled meanwhile runs the callback right here, and it takes the lock itself.
            var registration = cancellationToken.UnsafeRegister(static state => ((Waiter)state!).Owner.OnCancelled((Waiter)state), waiter);
            var keep = false;
            lock (_lock)
            {
                if (waiter.Queued)
                {
                    waiter.Cancellation = registration;
                    keep = true;
                }
            }

            if (!keep)
            {
                registration.Dispose();
            }
        }

        return new ValueTask<RateLimitLease>(waiter.Task);
    }

    /// <summary>
    /// An attempt ended (its lease was disposed): its concurrency permit goes to whoever is next — after
    /// <see cref="UpstreamSchedulerOptions.ReleaseDelay"/>, since the upstream counts a request in flight until it has
    /// finished answering, a moment after the proxy has read the answer. A delayed permit waits in line to be handed
    /// back (<see cref="Settle"/>); no timer is armed for it unless work waits for a slot.
    /// </summary>
    internal void Release(WorkPriority priority)
    {
        lock (_lock)
        {
            if (_releaseDelayTicks > 0)
            {
                _releasing.Enqueue((_time.GetTimestamp() + _releaseDelayTicks, priority));
            }
            else
            {
                Of(priority).Running--;
            }

            if (!_disposed)
            {
                Dispatch();
            }
        }
    }

    /// <summary>Hands back the permits whose release delay has passed: they are in the order they are due.</summary>
    private void Settle(long now)
    {
        while (_releasing.TryPeek(out var release) && release.FreeAt <= now)
        {
            _releasing.Dequeue();
            Of(release.Priority).Running--;
        }
    }

    /// <summary>Waiting items get a refused lease (<see cref="SchedulerRefusal.Disposed"/>); later acquisitions throw.</summary>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            FailWaiters();
        }

        base.Dispose(disposing);
    }

    protected override async ValueTask DisposeAsyncCore()
    {
        FailWaiters();
        await base.DisposeAsyncCore().ConfigureAwait(false);
    }

    private void FailWaiters()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            foreach (var queues in (ReadOnlySpan<PriorityClass>)[_foreground, _background])
            {
                while (queues.Ring.Current is { } lane)
                {
                    var waiter = lane.First!;
                    Unlink(waiter);
                    _refused[(int)SchedulerRefusal.Disposed]++;
                    waiter.TrySetResult(DisposedSlot);
                }
            }

            _wakeTimer.Dispose();
        }
    }

    private int Running => _foreground.Running + _background.Running;

    private PriorityClass Of(WorkPriority priority) => priority == WorkPriority.Foreground ? _foreground : _background;

    private static void Validate(UpstreamWork resource, int permitCount)
    {
        // One attempt is one slot; a request for several (or for none, "is there room?") has no meaning here.
        ArgumentOutOfRangeException.ThrowIfNotEqual(permitCount, 1);
        ArgumentNullException.ThrowIfNull(resource.Client, nameof(resource));
        if (resource.Priority is not (WorkPriority.Foreground or WorkPriority.Background))
        {
            throw new ArgumentOutOfRangeException(nameof(resource), resource.Priority, "unknown priority");
        }
    }

    private bool CanStartNow(WorkPriority priority, long now) => priority == WorkPriority.Foreground
        ? _foreground.Waiting == 0 && Running < Options.MaxConcurrency && _starts.NextStart(0, now) <= now
        : _foreground.Waiting == 0 && _background.Waiting == 0 && CanStartBackground(now);

    private bool CanStartBackground(long now) =>
        Running < Options.MaxConcurrency
        && _background.Running < Options.MaxBackgroundConcurrency
        && _starts.NextStart(_backgroundReserve, now) <= now;

    /// <summary>
    /// Grants as much waiting work as the limits allow, foreground lanes first, each priority round robin. What stops it
    /// arms the wake timer: the rate, for the moment the next start is allowed; the slots, for the moment the first
    /// delayed release is due (a slot still running comes back through <see cref="Release"/>, which re-enters here).
    /// </summary>
    private void Dispatch()
    {
        if (_foreground.Waiting == 0 && _background.Waiting == 0)
        {
            // The common release: nobody waits, so there is nothing to read the clocks for.
            return;
        }

        var nowUtc = _time.GetUtcNow();
        var now = _time.GetTimestamp();
        Settle(now);
        while (true)
        {
            PriorityClass queues;
            if (Running >= Options.MaxConcurrency)
            {
                WakeAtNextRelease(now);
                return;
            }

            if (_foreground.Waiting > 0)
            {
                queues = _foreground;
                if (_starts.NextStart(0, now) is var next && next > now)
                {
                    WakeIn(next - now);
                    return;
                }
            }
            else if (_background.Running < Options.MaxBackgroundConcurrency)
            {
                queues = _background;
                if (_starts.NextStart(_backgroundReserve, now) is var next && next > now)
                {
                    WakeIn(next - now);
                    return;
                }
            }
            else
            {
                // Background work waits for one of its own slots.
                WakeAtNextRelease(now);
                return;
            }

            var lane = queues.Ring.Current!;
            var waiter = lane.First!;
            queues.Ring.Advance();
            Unlink(waiter);
            if (waiter.Deadline <= nowUtc)
            {
                // Its deadline timer has not fired yet; a start now would be wasted on a caller that has given up.
                waiter.TrySetResult(Refuse(SchedulerRefusal.Expired, RetryAfterForNewItem(queues, lane.Client, now)));
            }
            else
            {
                waiter.TrySetResult(Grant(queues, now));
            }

            if (_foreground.Waiting == 0 && _background.Waiting == 0)
            {
                return;
            }
        }
    }

    private GrantedSlot Grant(PriorityClass queues, long now)
    {
        _starts.Record(now);
        queues.Running++;
        _granted++;
        return new GrantedSlot(this, queues.Priority);
    }

    private RefusedSlot Refuse(SchedulerRefusal refusal, TimeSpan retryAfter)
    {
        _refused[(int)refusal]++;
        return new RefusedSlot(refusal, retryAfter);
    }

    /// <summary>Takes a queued waiter out of its lane (and the lane out of the ring when it empties) and stops its timers.</summary>
    private void Unlink(Waiter waiter)
    {
        var lane = waiter.Lane;
        var queues = Of(lane.Priority);
        lane.Remove(waiter);
        queues.Waiting--;
        if (lane.Count == 0)
        {
            queues.Ring.Remove(lane);
            queues.Lanes.Remove(lane.Client);
        }

        waiter.DeadlineTimer?.Dispose();
        waiter.DeadlineTimer = null;

        // Unregister, not Dispose: Dispose would wait for a cancellation callback that is itself waiting for this lock.
        waiter.Cancellation.Unregister();
    }

    private void OnCancelled(Waiter waiter)
    {
        lock (_lock)
        {
            if (!waiter.Queued)
            {
                return;
            }

            Unlink(waiter);
            _cancelled++;
            waiter.TrySetCanceled(waiter.CancellationToken);

            // A foreground lane emptying can let background work start.
            Dispatch();
        }
    }

    private void OnDeadline(Waiter waiter)
    {
        lock (_lock)
        {
            if (!waiter.Queued)
            {
                return;
            }

            var nowUtc = _time.GetUtcNow();
            if (waiter.Deadline > nowUtc)
            {
                // A real timer may fire a little early; look again when the deadline has really passed.
                waiter.DeadlineTimer?.Change(TimerDue(waiter.Deadline - nowUtc), Timeout.InfiniteTimeSpan);
                return;
            }

            Unlink(waiter);
            waiter.TrySetResult(Refuse(SchedulerRefusal.Expired, RetryAfterForNewItem(Of(waiter.Lane.Priority), waiter.Lane.Client, _time.GetTimestamp())));
            Dispatch();
        }
    }

    private void OnWakeTimer()
    {
        lock (_lock)
        {
            if (!_disposed)
            {
                Dispatch();
            }
        }
    }

    /// <summary>
    /// A lower bound on how long the item at <paramref name="position"/> (1-based) of <paramref name="lane"/> (null: a
    /// lane not waiting yet, which would join at the end of the round) will wait, from who waits now:
    /// <list type="number">
    /// <item>grants ahead, G = (position − 1) + Σ over the other lanes of this priority of min(their length, position)
    /// for the lanes served before this one in the current round and min(their length, position − 1) for those after
    /// it — plus, for background work, all waiting foreground work;</item>
    /// <item>wait = the earliest start of the (G + 1)-th next grant under the rate (<see cref="SlidingStartWindow.EarliestStart"/>):
    /// with the rate idle, ⌊G / RequestsPerSecond⌋ seconds; otherwise when enough of the last second's starts have left the window.</item>
    /// </list>
    /// It leaves out the concurrency limit (how long running attempts take is unknown) and clients that arrive later,
    /// so it never overstates the wait: an item is refused as over budget only when even the rate alone makes it late.
    /// One that then waits longer than estimated is refused when its deadline passes (<see cref="SchedulerRefusal.Expired"/>).
    /// </summary>
    private TimeSpan EstimateWait(PriorityClass queues, Lane? lane, int position, long now)
    {
        var ahead = position - 1;
        var beforeOwn = true;
        if (queues.Ring.Current is { } first)
        {
            var other = first;
            do
            {
                if (other == lane)
                {
                    beforeOwn = false;
                }
                else
                {
                    ahead += Math.Min(other.Count, beforeOwn ? position : position - 1);
                }

                other = other.RingNext!;
            }
            while (other != first);
        }

        if (queues.Priority == WorkPriority.Background)
        {
            ahead += _foreground.Waiting;
        }

        return _time.GetElapsedTime(now, _starts.EarliestStart(ahead + 1, now));
    }

    /// <summary>What a retry from this client would wait: the estimate for an item joining the end of its lane.</summary>
    private TimeSpan RetryAfterForNewItem(PriorityClass queues, string client, long now)
    {
        var lane = queues.Lanes.GetValueOrDefault(client);
        return RetryAfter(EstimateWait(queues, lane, (lane?.Count ?? 0) + 1, now));
    }

    private static TimeSpan RetryAfter(TimeSpan wait) => wait > MinRetryAfter ? wait : MinRetryAfter;

    /// <summary>
    /// A one-shot timer that does not capture the caller's ExecutionContext: its callback serves the scheduler, not the
    /// request that happened to arm it, and a captured context would keep that request's Activity and scopes alive.
    /// </summary>
    private ITimer CreateTimer(TimerCallback callback, object state, TimeSpan dueTime)
    {
        if (ExecutionContext.IsFlowSuppressed())
        {
            return _time.CreateTimer(callback, state, dueTime, Timeout.InfiniteTimeSpan);
        }

        using (ExecutionContext.SuppressFlow())
        {
            return _time.CreateTimer(callback, state, dueTime, Timeout.InfiniteTimeSpan);
        }
    }

    private void WakeIn(long ticksAhead) =>
        _wakeTimer.Change(TimerDue(_time.GetElapsedTime(0, ticksAhead)), Timeout.InfiniteTimeSpan);

    private void WakeAtNextRelease(long now)
    {
        if (_releasing.TryPeek(out var release))
        {
            WakeIn(release.FreeAt - now);
        }
    }

    /// <summary>
    /// Whole milliseconds, rounded up and at least one: timers have millisecond resolution, a timer that fires early
    /// only re-arms, and a due time of zero would make a fake clock run the callback inline, under the lock. Capped at
    /// the longest due time a timer takes (about 49 days); a far deadline's timer re-arms when it fires.
    /// </summary>
    private static TimeSpan TimerDue(TimeSpan wait) =>
        TimeSpan.FromMilliseconds(Math.Clamp(Math.Ceiling(wait.TotalMilliseconds), 1, MaxTimerDueMilliseconds));

    private const double MaxTimerDueMilliseconds = uint.MaxValue - 1;
}
