using System.Net;
using MsiProxy.Interception;

namespace MsiProxy.Docker.Wiring;

/// <summary>What host-level interception is built from, as the Docker monitor saw it in one pass.</summary>
/// <param name="Proxy">Where intercepted traffic goes; null when it is not known (nothing can be redirected).</param>
/// <param name="Networks">The engine's networks (their bridge interfaces are intercepted).</param>
/// <param name="ExemptSources">Containers that may reach IMDS themselves (msiserviceclients).</param>
internal sealed record HostView(ProxyEndpoint? Proxy, IReadOnlyList<NetworkInfo> Networks, IReadOnlyList<IPAddress> ExemptSources);

/// <summary>
/// How client containers' calls to 169.254.169.254 reach the proxy. Either host-level (one set of rules covers every
/// container, kept by <see cref="ReconcileHostAsync"/>) or per container (<see cref="WireAsync"/> / <see cref="UnwireAsync"/>).
/// All idempotent.
/// </summary>
internal interface IContainerWiring
{
    string Mode { get; }

    /// <summary>
    /// Brings host-level interception up to date; called at the start of every monitor pass. Null when this wiring has
    /// none. When it has, a container is covered the moment it starts: it is registered ready without being wired.
    /// </summary>
    Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken);

    Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken);

    Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken);
}

/// <summary><c>MsiProxy:Docker:Wiring=None</c>: containers reach the proxy another way; registration alone makes them ready.</summary>
internal sealed class NoWiring : IContainerWiring
{
    public string Mode => "None";

    public Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken) =>
        Task.FromResult<HostInterceptionState?>(null);

    public Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "wiring disabled (MsiProxy:Docker:Wiring=None)"));

    public Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "wiring disabled"));
}

/// <summary>Picks the wiring for the engine's platform when <see cref="WiringMode.Auto"/> is configured.</summary>
internal sealed class AutoWiring(IContainerEngine engine, HostRulesWiring linux, WindowsScriptWiring windows) : IContainerWiring
{
    private IContainerWiring? _chosen;

    public string Mode => _chosen?.Mode ?? "Auto";

    public async Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken) =>
        await (await ChooseAsync(cancellationToken).ConfigureAwait(false)).ReconcileHostAsync(view, cancellationToken).ConfigureAwait(false);

    public async Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        await (await ChooseAsync(cancellationToken).ConfigureAwait(false)).WireAsync(container, proxy, cancellationToken).ConfigureAwait(false);

    public async Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        await (await ChooseAsync(cancellationToken).ConfigureAwait(false)).UnwireAsync(container, proxy, cancellationToken).ConfigureAwait(false);

    private async Task<IContainerWiring> ChooseAsync(CancellationToken cancellationToken) =>
        _chosen ??= await engine.GetOperatingSystemAsync(cancellationToken).ConfigureAwait(false) == "windows" ? windows : linux;
}
