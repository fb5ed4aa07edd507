using System.Collections.Concurrent;
using System.Net;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.Interception;

namespace MsiProxy.Tests.Docker;

/// <summary>An engine whose containers and event stream the test controls; records every exec and copy.</summary>
internal sealed class FakeContainerEngine : IContainerEngine
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ContainerInfo> _running = new(StringComparer.Ordinal);
    private Channel<ContainerEvent> _events = Channel.CreateUnbounded<ContainerEvent>();

    public string OperatingSystem { get; set; } = "linux";
    public int Subscriptions;
    public int Lists;
    public ConcurrentQueue<(string Id, string? User, string[] Command)> Execs { get; } = new();
    public ConcurrentQueue<(string Id, string Source, string Target)> Copies { get; } = new();
    public Func<string[], ExecResult> ExecAnswer { get; set; } = _ => new ExecResult(0, "", "");

    private List<NetworkInfo> _networks = [new("n1", "test", "br-0123456789ab", [AddressRange.Parse("127.0.0.0/8")], [])];

    /// <summary>How long a list of running containers takes (a real engine takes milliseconds).</summary>
    public TimeSpan ListDelay { get; set; }

    public static ContainerInfo Container(string id, string name, string address, IReadOnlyDictionary<string, string>? labels = null, int pid = 100) =>
        new(id, name, labels ?? new Dictionary<string, string>(), new Dictionary<string, IPAddress> { ["test"] = IPAddress.Parse(address) }, pid);

    public static Dictionary<string, string> ClientLabels(string? identities = null, string? name = null)
    {
        var labels = new Dictionary<string, string> { ["msi-proxy.client"] = "true" };
        if (identities is not null)
        {
            labels["msi-proxy.identities"] = identities;
        }

        if (name is not null)
        {
            labels["msi-proxy.name"] = name;
        }

        return labels;
    }

    /// <summary>Starts (or restarts) a container, optionally announcing it on the event stream.</summary>
    public void Start(ContainerInfo container, bool announce = true)
    {
        lock (_gate)
        {
            _running[container.Id] = container;
        }

        if (announce)
        {
            Announce("start", container.Id);
        }
    }

    public void Die(string id, bool announce = true)
    {
        lock (_gate)
        {
            _running.Remove(id);
        }

        if (announce)
        {
            Announce("die", id);
        }
    }

    public void Announce(string action, string id)
    {
        lock (_gate)
        {
            _events.Writer.TryWrite(new ContainerEvent("container", action, id));
        }
    }

    /// <summary>Replaces the networks (one bridge holding every loopback "container IP" by default) and says so on the event stream.</summary>
    public void SetNetworks(params NetworkInfo[] networks)
    {
        lock (_gate)
        {
            _networks = [.. networks];
            _events.Writer.TryWrite(new ContainerEvent("network", "create", ""));
        }
    }

    /// <summary>The engine drops the event stream (e.g. dockerd restarted); the next subscription gets a new one.</summary>
    public void BreakStream()
    {
        lock (_gate)
        {
            _events.Writer.TryComplete(new IOException("connection reset by the fake engine"));
            _events = Channel.CreateUnbounded<ContainerEvent>();
        }
    }

    public Task<string> GetOperatingSystemAsync(CancellationToken cancellationToken) => Task.FromResult(OperatingSystem);

    public async Task<IReadOnlyList<ContainerInfo>> ListRunningAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref Lists);
        if (ListDelay > TimeSpan.Zero)
        {
            await Task.Delay(ListDelay, cancellationToken);
        }

        lock (_gate)
        {
            return [.. _running.Values];
        }
    }

    public Task<IReadOnlyList<NetworkInfo>> ListNetworksAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult<IReadOnlyList<NetworkInfo>>([.. _networks]);
        }
    }

    public Task<ContainerInfo?> InspectAsync(string id, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return Task.FromResult(_running.GetValueOrDefault(id));
        }
    }

    public async IAsyncEnumerable<ContainerEvent> WatchAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Channel<ContainerEvent> events;
        lock (_gate)
        {
            events = _events;
        }

        Interlocked.Increment(ref Subscriptions);
        await foreach (var item in events.Reader.ReadAllAsync(cancellationToken))
        {
            yield return item;
        }
    }

    public Task<ExecResult> ExecAsync(string id, string? user, IReadOnlyList<string> command, CancellationToken cancellationToken)
    {
        Execs.Enqueue((id, user, [.. command]));
        return Task.FromResult(ExecAnswer([.. command]));
    }

    public Task CopyDirectoryAsync(string id, string sourceDirectory, string containerDirectory, CancellationToken cancellationToken)
    {
        Copies.Enqueue((id, sourceDirectory, containerDirectory));
        return Task.CompletedTask;
    }
}

/// <summary>
/// Wiring that fails while <see cref="Failing"/> is set and records what it did; with <see cref="HostLevel"/> it plays
/// host rules (every container covered, nothing wired per container) and records each view it was given.
/// </summary>
internal sealed class FakeWiring : IContainerWiring
{
    public volatile bool Failing;
    public ConcurrentQueue<string> Calls { get; } = new();
    public ConcurrentQueue<HostView> HostViews { get; } = new();
    public bool HostLevel { get; init; }

    public string Mode => "Fake";

    public Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken)
    {
        if (!HostLevel)
        {
            return Task.FromResult<HostInterceptionState?>(null);
        }

        HostViews.Enqueue(view);
        return Task.FromResult<HostInterceptionState?>(Failing
            ? new HostInterceptionState(false, "iptables-restore failed (exit 4: fake)", [], DateTimeOffset.UtcNow)
            : new HostInterceptionState(true, "in place", ["-A MSIPROXY-IMDS-DROP -j DROP"], DateTimeOffset.UtcNow));
    }

    public Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"wire {container.Name} -> {proxy}");
        return Task.FromResult(Failing ? new WiringOutcome(false, "iptables: permission denied (fake)") : new WiringOutcome(true, "wired (fake)"));
    }

    public Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken)
    {
        Calls.Enqueue($"unwire {container.Name}");
        return Task.FromResult(new WiringOutcome(true, "removed (fake)"));
    }
}
