using System.Net;
using System.Threading.Channels;
using MsiProxy.Clients;

namespace MsiProxy.Docker;

/// <summary>What one monitor pass saw: the engine's subnets, and every address held by a running container or a gateway.</summary>
internal sealed class NetworkView
{
    private readonly IReadOnlyList<AddressRange> _subnets;
    private readonly HashSet<IPAddress> _known;

    private NetworkView(IReadOnlyList<AddressRange> subnets, HashSet<IPAddress> known)
    {
        _subnets = subnets;
        _known = known;
    }

    public static NetworkView Of(IReadOnlyList<NetworkInfo> networks, IReadOnlyList<ContainerInfo> containers) => new(
        [.. networks.SelectMany(n => n.Subnets)],
        [.. containers.SelectMany(c => c.Networks.Values).Concat(networks.SelectMany(n => n.Gateways)).Select(AddressRange.Normalise)]);

    /// <summary>The address is on one of the engine's networks (only such callers are worth asking the engine about).</summary>
    public bool IsWatched(IPAddress address) => _subnets.Any(s => s.Contains(address));

    /// <summary>A running container (client or not) or a network gateway had this address in that pass.</summary>
    public bool Holds(IPAddress address) => _known.Contains(address);
}

/// <summary>
/// Wakes the monitor loop — engine events and discovery requests, coalesced: one pending pass covers any number of
/// them — and numbers the passes, so a waiter knows which pass started after its request.
/// </summary>
internal sealed class ReconcileTrigger
{
    private readonly Channel<bool> _signals = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private long _events;
    private long _passesStarted;

    /// <summary>Relevant engine events seen so far.</summary>
    public long Events => Interlocked.Read(ref _events);

    public long PassesStarted => Interlocked.Read(ref _passesStarted);

    public void EventArrived()
    {
        Interlocked.Increment(ref _events);
        Request();
    }

    public void Request() => _signals.Writer.TryWrite(true);

    public Task<bool> WaitAsync(CancellationToken cancellationToken) => _signals.Reader.WaitToReadAsync(cancellationToken).AsTask();

    /// <summary>Called as a pass starts: takes the pending signal (this pass serves it) and numbers the pass.</summary>
    public PassStart BeginPass()
    {
        _signals.Reader.TryRead(out _);
        var events = Events;
        return new PassStart(Interlocked.Increment(ref _passesStarted), events);
    }
}

/// <summary>A pass's number and how many engine events had been seen when it started.</summary>
internal sealed record PassStart(long Number, long EventsAtStart);

/// <summary>
/// <see cref="ICallerDiscovery"/> for Docker: a caller the registry does not know, on one of the engine's networks, may
/// be a container that has just started and called before its start event was handled. Its request asks the monitor
/// loop for a pass (the one loop that registers, so nothing here takes a lock on the registry) and completes once a
/// pass that started after the request has seen the address — registered if it is a labelled container — or the
/// caller's own bound ends. An address a pass already knows as an unlabelled container, with no engine event since,
/// is answered at once, so a stranger calling in a loop does not make the monitor list the engine in a loop.
/// </summary>
internal sealed class DockerCallerDiscovery(ReconcileTrigger trigger, ContainerReconciler reconciler) : ICallerDiscovery
{
    private readonly Lock _gate = new();
    private readonly List<Waiter> _waiters = [];
    private volatile LastPass? _last;

    public async Task DiscoverAsync(IPAddress caller, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(caller);
        caller = AddressRange.Normalise(caller);
        if (_last is { } last && (!last.View.IsWatched(caller) || (last.View.Holds(caller) && last.Start.EventsAtStart == trigger.Events)))
        {
            return; // not a container's address, or a container the monitor already knows about
        }

        var waiter = new Waiter(caller, trigger.PassesStarted + 1);
        lock (_gate)
        {
            _waiters.Add(waiter);
        }

        using var cancel = cancellationToken.Register(() =>
        {
            lock (_gate)
            {
                _waiters.Remove(waiter);
            }

            waiter.Done.TrySetCanceled(cancellationToken);
        });
        trigger.Request();
        await waiter.Done.Task.ConfigureAwait(false);
    }

    /// <summary>The monitor loop, after the pass begun as <paramref name="start"/> has registered what it found.</summary>
    public void PassCompleted(PassStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        if (reconciler.View is not { } view)
        {
            return;
        }

        var pass = start.Number;
        _last = new LastPass(start, view);
        List<Waiter> done;
        lock (_gate)
        {
            // An address nobody holds yet stays waiting: the container may be running before the engine lists it
            // (its start event brings the next pass), until the caller's bound ends.
            done = _waiters.Where(w => w.NeedsPass <= pass && (view.Holds(w.Caller) || !view.IsWatched(w.Caller))).ToList();
            _waiters.RemoveAll(done.Contains);
        }

        foreach (var waiter in done)
        {
            waiter.Done.TrySetResult();
        }
    }

    private sealed record LastPass(PassStart Start, NetworkView View);

    private sealed record Waiter(IPAddress Caller, long NeedsPass)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
