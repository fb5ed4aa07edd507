using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Docker.Wiring;
using MsiProxy.Interception;
using MsiProxy.Telemetry;

namespace MsiProxy.Docker;

/// <summary>
/// Makes host interception, registrations, wiring and upstreams match the running containers and networks. Called by
/// <see cref="ContainerMonitor"/> at start, after every relevant event, when a caller is being discovered and
/// periodically — always from one loop, so it needs no locks. Each pass lists the engine's containers (the truth)
/// rather than trusting event order: a late "die" of an old container can only remove the registration that still
/// carries that container's id, never a newer owner of the IP or name.
/// </summary>
internal sealed partial class ContainerReconciler(
    IContainerEngine engine,
    IRegistrationSink sink,
    IContainerWiring wiring,
    MonitorState state,
    IOptions<DockerMonitorOptions> options,
    MsiProxyTelemetry telemetry,
    TimeProvider time,
    ILogger<ContainerReconciler> logger)
{
    private readonly Dictionary<string, Tracked> _tracked = new(StringComparer.Ordinal);
    private readonly ContainerLabels _labels = new(options.Value);
    private IReadOnlyList<string>? _upstreams;
    private int _hostFailures;
    private DateTimeOffset? _hostRetryAt;

    /// <summary>When the earliest failed wiring (or host interception) is due for another attempt (the monitor wakes up for it).</summary>
    public DateTimeOffset? NextRetryAt =>
        _tracked.Values.Where(t => t.Status == WiringStatus.Failed).Select(t => t.NextAttempt).Append(_hostRetryAt).Min();

    /// <summary>The networks and addresses seen by the last complete pass (null before the first).</summary>
    public NetworkView? View { get; private set; }

    public async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        var containers = await engine.ListRunningAsync(cancellationToken).ConfigureAwait(false);
        var networks = await engine.ListNetworksAsync(cancellationToken).ConfigureAwait(false);
        var proxy = FindProxy(containers);

        // 0. Host-level interception first: it is what keeps every container, labelled or not, away from IMDS.
        var hostLevel = await ReconcileHostAsync(containers, networks, proxy, cancellationToken).ConfigureAwait(false);
        var clients = containers.Where(_labels.IsClient).ToDictionary(c => c.Id, c => (Container: c, Spec: _labels.ReadClient(c)), StringComparer.Ordinal);

        // 1. Gone or changed (new address, name or labels): remove first, so names and addresses are free for new owners.
        foreach (var (id, tracked) in _tracked.ToList())
        {
            if (!clients.TryGetValue(id, out var current))
            {
                await RemoveAsync(tracked, running: null, proxy, cancellationToken).ConfigureAwait(false);
            }
            else if (!current.Spec.SameRegistration(tracked.Spec) || current.Spec.Problem != tracked.Spec.Problem)
            {
                await RemoveAsync(tracked, current.Container, proxy, cancellationToken).ConfigureAwait(false);
            }
            else if (current.Spec.Pid != tracked.Spec.Pid || (tracked.Status == WiringStatus.Wired && tracked.WiredTo != proxy))
            {
                // Restarted in place (new network namespace, rules gone) or the proxy moved: wire again.
                tracked.Update(current.Container, current.Spec);
                tracked.Status = WiringStatus.Pending;
                tracked.Failures = 0;
            }
        }

        // 2. Registrations left by an earlier monitor run whose container no longer runs (or is no client any more).
        foreach (var managed in await sink.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (!clients.ContainsKey(managed.ContainerId)
                && await sink.DeregisterAsync(managed.Name, managed.ContainerId, cancellationToken).ConfigureAwait(false))
            {
                Count("deregister");
                LogStaleRemoved(managed.Name, managed.ContainerId);
            }
        }

        // 3. New clients, and clients whose wiring is pending or due for a retry.
        var now = time.GetUtcNow();
        foreach (var (id, (container, spec)) in clients.OrderBy(c => c.Value.Spec.Name, StringComparer.Ordinal))
        {
            if (!_tracked.TryGetValue(id, out var tracked))
            {
                tracked = new Tracked(container, spec);
                _tracked[id] = tracked;
                if (spec.Problem is not null)
                {
                    tracked.Status = WiringStatus.Invalid;
                    Publish(tracked, spec.Problem);
                    Error("labels");
                    LogInvalid(spec.Name, container.ShortId, spec.Problem);
                    continue;
                }
            }

            if (tracked.Status == WiringStatus.Pending || (tracked.Status == WiringStatus.Failed && tracked.NextAttempt <= now))
            {
                if (hostLevel)
                {
                    await RegisterCoveredAsync(tracked, proxy, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await WireAsync(tracked, proxy, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        await ReconcileUpstreamsAsync(containers, cancellationToken).ConfigureAwait(false);
        View = NetworkView.Of(networks, containers);
        state.Reconciled(time.GetUtcNow());
    }

    /// <summary>Brings the host rules up to date; true when interception is host-level (containers need no wiring of their own).</summary>
    private async Task<bool> ReconcileHostAsync(IReadOnlyList<ContainerInfo> containers, IReadOnlyList<NetworkInfo> networks, ProxyEndpoint? proxy,
        CancellationToken cancellationToken)
    {
        IReadOnlyList<IPAddress> exempt = options.Value.HostRules.ExemptMsiServiceClients
            ? [.. containers.Where(c => _labels.HasRole(c, ContainerLabels.RoleMsiServiceClient)).SelectMany(c => c.Networks.Values)]
            : [];
        var host = await wiring.ReconcileHostAsync(new HostView(proxy, networks, exempt), cancellationToken).ConfigureAwait(false);
        state.HostInterception = host;
        if (host is { InPlace: false })
        {
            _hostFailures++;
            _hostRetryAt = time.GetUtcNow() + options.Value.Backoff(_hostFailures);
            Error("host");
        }
        else
        {
            _hostFailures = 0;
            _hostRetryAt = null;
        }

        return host is not null;
    }

    /// <summary>Host-level interception covers the container already: registered ready at once, nothing to wire.</summary>
    private async Task RegisterCoveredAsync(Tracked tracked, ProxyEndpoint? proxy, CancellationToken cancellationToken)
    {
        var spec = tracked.Spec;
        using (StartActivity("monitor.register", tracked))
        {
            await sink.RegisterAsync(Registration(spec, ready: true), cancellationToken).ConfigureAwait(false);
        }

        tracked.Status = WiringStatus.Wired;
        tracked.WiredTo = proxy;
        tracked.Failures = 0;
        tracked.NextAttempt = null;
        Publish(tracked, "covered by the host rules");
        Count("register");
        LogRegistered(spec.Name, tracked.Container.ShortId, spec.Address, true);
    }

    private async Task WireAsync(Tracked tracked, ProxyEndpoint? proxy, CancellationToken cancellationToken)
    {
        var spec = tracked.Spec;
        if (tracked.Failures == 0)
        {
            // Registered before it is wired: its first calls get 503 + Retry-After (SDKs retry), not 403.
            using var register = StartActivity("monitor.register", tracked);
            await sink.RegisterAsync(Registration(spec, ready: false), cancellationToken).ConfigureAwait(false);
            Count("register");
            LogRegistered(spec.Name, tracked.Container.ShortId, spec.Address, false);
        }

        Publish(tracked, "wiring");
        WiringOutcome outcome;
        using (var activity = StartActivity("monitor.wire", tracked))
        {
            if (proxy is null)
            {
                outcome = new(false, "the proxy address is unknown: set MsiProxy:Docker:ProxyAddress or label the proxy container "
                    + options.Value.LabelRole + "=" + ContainerLabels.RoleProxy);
            }
            else
            {
                try
                {
                    outcome = await wiring.WireAsync(tracked.Container, proxy, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    outcome = new(false, $"{ex.GetType().Name}: {ex.Message}");
                }
            }

            activity?.SetTag("msiproxy.wiring.result", outcome.Succeeded ? "wired" : "failed");
            if (!outcome.Succeeded)
            {
                activity?.SetStatus(ActivityStatusCode.Error, outcome.Detail);
            }
        }

        if (!outcome.Succeeded)
        {
            tracked.Failures++;
            tracked.Status = WiringStatus.Failed;
            tracked.NextAttempt = time.GetUtcNow() + options.Value.Backoff(tracked.Failures);
            Publish(tracked, outcome.Detail);
            Error("wire");
            LogWiringFailed(spec.Name, tracked.Container.ShortId, tracked.Failures, outcome.Detail, tracked.NextAttempt.Value);
            return;
        }

        using (StartActivity("monitor.register", tracked))
        {
            await sink.RegisterAsync(Registration(spec, ready: true), cancellationToken).ConfigureAwait(false);
        }

        tracked.Status = WiringStatus.Wired;
        tracked.WiredTo = proxy;
        tracked.Failures = 0;
        tracked.NextAttempt = null;
        Publish(tracked, outcome.Detail);
        Count("wire");
        LogWired(spec.Name, tracked.Container.ShortId, spec.Address, wiring.Mode, outcome.Detail);
    }

    private async Task RemoveAsync(Tracked tracked, ContainerInfo? running, ProxyEndpoint? proxy, CancellationToken cancellationToken)
    {
        _tracked.Remove(tracked.Container.Id);
        state.Remove(tracked.Container.Id);
        if (tracked.Status != WiringStatus.Invalid)
        {
            using (StartActivity("monitor.deregister", tracked))
            {
                // Compared by container id: if a newer container already took the name or address, it keeps it.
                await sink.DeregisterAsync(tracked.Spec.Name, tracked.Container.Id, cancellationToken).ConfigureAwait(false);
            }

            Count("deregister");
            LogDeregistered(tracked.Spec.Name, tracked.Container.ShortId);
        }

        // A stopped container's namespace (and rule) is gone with it; only a still-running one is unwired.
        if (running is not null && tracked.WiredTo is { } wiredTo)
        {
            using var activity = StartActivity("monitor.unwire", tracked);
            try
            {
                var outcome = await wiring.UnwireAsync(running, wiredTo, cancellationToken).ConfigureAwait(false);
                if (!outcome.Succeeded)
                {
                    Error("unwire");
                    LogUnwireFailed(tracked.Spec.Name, running.ShortId, outcome.Detail);
                }
                else
                {
                    Count("unwire");
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Error("unwire");
                LogUnwireFailed(tracked.Spec.Name, running.ShortId, ex.Message);
            }
        }
    }

    private async Task ReconcileUpstreamsAsync(IReadOnlyList<ContainerInfo> containers, CancellationToken cancellationToken)
    {
        // msiserviceclients by container name (a stable, documented order), then the configured upstreams as fallback.
        List<string> discovered =
        [
            .. containers.Where(c => _labels.HasRole(c, ContainerLabels.RoleMsiServiceClient))
                .OrderBy(c => c.Name, StringComparer.Ordinal)
                .Select(_labels.UpstreamUrl)
                .OfType<string>(),
        ];
        state.DiscoveredUpstreams = discovered;
        if (discovered.Count == 0 && _upstreams is null)
        {
            return; // never changed anything: the configured upstreams stay as they are
        }

        List<string> desired = [.. discovered, .. sink.StaticUpstreams.Select(u => u.TrimEnd('/')).Where(u => !discovered.Contains(u))];
        if (_upstreams is not null && desired.SequenceEqual(_upstreams))
        {
            return;
        }

        using var activity = MsiProxyTelemetry.ActivitySource.StartActivity("monitor.upstreams");
        activity?.SetTag("msiproxy.upstreams", string.Join(",", desired));
        await sink.SetUpstreamsAsync(desired, cancellationToken).ConfigureAwait(false);
        _upstreams = desired;
        Count("upstreams");
        LogUpstreams(desired);
    }

    private ProxyEndpoint? FindProxy(IReadOnlyList<ContainerInfo> containers)
    {
        var settings = options.Value;
        if (!string.IsNullOrWhiteSpace(settings.ProxyAddress))
        {
            return IPAddress.TryParse(settings.ProxyAddress, out var configured) ? new ProxyEndpoint(configured, settings.ProxyPort) : null;
        }

        // The container labelled as the proxy, else our own container (Docker sets the hostname to the short id).
        var proxy = containers.FirstOrDefault(c => _labels.HasRole(c, ContainerLabels.RoleProxy))
            ?? containers.FirstOrDefault(c => c.Id.StartsWith(Environment.MachineName, StringComparison.OrdinalIgnoreCase) && Environment.MachineName.Length >= 12);
        return proxy?.AddressOn(settings.Network) is { } address ? new ProxyEndpoint(address, settings.ProxyPort) : null;
    }

    private static ClientRegistration Registration(ClientSpec spec, bool ready) => new()
    {
        Name = spec.Name,
        Address = AddressRange.ForAddress(spec.Address!),
        Identities = spec.Identities,
        Prefetch = spec.Prefetch,
        Source = RegistrationSources.Docker,
        WorkloadId = spec.ContainerId,
        Ready = ready,
        Proof = spec.Proof,
        IdentityHeader = spec.IdentityHeader,
    };

    private void Publish(Tracked tracked, string? detail) =>
        state.Set(new ClientWiringState(tracked.Container.Id, tracked.Spec.Name, tracked.Spec.Address?.ToString(), tracked.Status,
            tracked.Failures, detail, time.GetUtcNow(), tracked.NextAttempt));

    private static Activity? StartActivity(string name, Tracked tracked)
    {
        var activity = MsiProxyTelemetry.ActivitySource.StartActivity(name);
        activity?.SetTag("msiproxy.client", tracked.Spec.Name);
        activity?.SetTag("container.id", tracked.Container.Id);
        return activity;
    }

    private void Count(string action) => telemetry.MonitorEvents.Add(1, new KeyValuePair<string, object?>("action", action));

    private void Error(string action) => telemetry.MonitorErrors.Add(1, new KeyValuePair<string, object?>("action", action));

    [LoggerMessage(Level = LogLevel.Information, Message = "Registered client {Client} (container {ContainerId}, {Address}), ready={Ready}")]
    private partial void LogRegistered(string client, string containerId, IPAddress? address, bool ready);

    [LoggerMessage(Level = LogLevel.Information, Message = "Wired client {Client} (container {ContainerId}, {Address}) with {Mode} wiring: {Detail}")]
    private partial void LogWired(string client, string containerId, IPAddress? address, string mode, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Wiring client {Client} (container {ContainerId}) failed (attempt {Attempt}): {Detail}; next attempt at {NextAttempt:O}")]
    private partial void LogWiringFailed(string client, string containerId, int attempt, string detail, DateTimeOffset nextAttempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Container {ContainerId} asks to be client {Client} but cannot be registered: {Problem}")]
    private partial void LogInvalid(string client, string containerId, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Deregistered client {Client} (container {ContainerId})")]
    private partial void LogDeregistered(string client, string containerId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed registration {Client} of container {ContainerId}, which no longer runs")]
    private partial void LogStaleRemoved(string client, string containerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Unwiring client {Client} (container {ContainerId}) failed: {Detail}")]
    private partial void LogUnwireFailed(string client, string containerId, string detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "Upstreams follow the msiserviceclient containers: {Upstreams}")]
    private partial void LogUpstreams(IReadOnlyList<string> upstreams);

    private sealed class Tracked(ContainerInfo container, ClientSpec spec)
    {
        public ContainerInfo Container { get; private set; } = container;
        public ClientSpec Spec { get; private set; } = spec;
        public string Status { get; set; } = WiringStatus.Pending;
        public int Failures { get; set; }
        public DateTimeOffset? NextAttempt { get; set; }
        public ProxyEndpoint? WiredTo { get; set; }

        public void Update(ContainerInfo container, ClientSpec spec)
        {
            Container = container;
            Spec = spec;
        }
    }
}
