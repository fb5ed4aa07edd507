using System.Threading.RateLimiting;

namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// One waiting attempt. It is its own task source (one allocation), and its own list node (no LinkedListNode), so
/// cancellation can unlink it from the middle of its lane in O(1). All fields are guarded by the scheduler's lock.
/// </summary>
internal sealed class Waiter(UpstreamScheduler owner, Lane lane, DateTimeOffset deadline, CancellationToken cancellationToken)
    : TaskCompletionSource<RateLimitLease>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    public UpstreamScheduler Owner { get; } = owner;
    public Lane Lane { get; } = lane;
    public DateTimeOffset Deadline { get; } = deadline;
    public CancellationToken CancellationToken { get; } = cancellationToken;

    /// <summary>True while the waiter is linked into its lane; every way out (grant, refusal, cancel) clears it once.</summary>
    public bool Queued { get; set; }

    public Waiter? Previous { get; set; }
    public Waiter? Next { get; set; }
    public ITimer? DeadlineTimer { get; set; }
    public CancellationTokenRegistration Cancellation { get; set; }
}

/// <summary>
/// One client's FIFO queue of one priority, and its place among the lanes that have work (<see cref="LaneRing"/>).
/// A lane exists only while it holds waiters: it leaves the ring and its dictionary when it empties, so nothing is
/// kept for a client that stopped asking.
/// </summary>
internal sealed class Lane(string client, WorkPriority priority)
{
    private Waiter? _first;
    private Waiter? _last;

    public string Client { get; } = client;
    public WorkPriority Priority { get; } = priority;
    public int Count { get; private set; }
    public Waiter? First => _first;

    public Lane? RingPrevious { get; set; }
    public Lane? RingNext { get; set; }

    public void Enqueue(Waiter waiter)
    {
        waiter.Previous = _last;
        waiter.Next = null;
        if (_last is null)
        {
            _first = waiter;
        }
        else
        {
            _last.Next = waiter;
        }

        _last = waiter;
        waiter.Queued = true;
        Count++;
    }

    public void Remove(Waiter waiter)
    {
        if (waiter.Previous is null)
        {
            _first = waiter.Next;
        }
        else
        {
            waiter.Previous.Next = waiter.Next;
        }

        if (waiter.Next is null)
        {
            _last = waiter.Previous;
        }
        else
        {
            waiter.Next.Previous = waiter.Previous;
        }

        waiter.Previous = waiter.Next = null;
        waiter.Queued = false;
        Count--;
    }
}

/// <summary>
/// The lanes of one priority that have work, in a circle; <see cref="Current"/> is the one served next. Serving a lane
/// moves <see cref="Current"/> on by one, and a lane that starts to wait joins just behind the current one, i.e. at the
/// end of the round — equal-cost deficit round robin, which is plain round robin: one grant per lane per round.
/// </summary>
internal sealed class LaneRing
{
    public Lane? Current { get; private set; }
    public int Count { get; private set; }

    public void AddLast(Lane lane)
    {
        if (Current is null)
        {
            lane.RingPrevious = lane.RingNext = lane;
            Current = lane;
        }
        else
        {
            var last = Current.RingPrevious!;
            lane.RingPrevious = last;
            lane.RingNext = Current;
            last.RingNext = lane;
            Current.RingPrevious = lane;
        }

        Count++;
    }

    public void Remove(Lane lane)
    {
        if (lane.RingNext == lane)
        {
            Current = null;
        }
        else
        {
            lane.RingPrevious!.RingNext = lane.RingNext;
            lane.RingNext!.RingPrevious = lane.RingPrevious;
            if (Current == lane)
            {
                Current = lane.RingNext;
            }
        }

        lane.RingPrevious = lane.RingNext = null;
        Count--;
    }

    /// <summary>The current lane has had its turn.</summary>
    public void Advance() => Current = Current?.RingNext;
}

/// <summary>Everything waiting or running at one priority.</summary>
internal sealed class PriorityClass(WorkPriority priority)
{
    public WorkPriority Priority { get; } = priority;
    public Dictionary<string, Lane> Lanes { get; } = new(StringComparer.Ordinal);
    public LaneRing Ring { get; } = new();
    public int Waiting { get; set; }
    public int Running { get; set; }
}
