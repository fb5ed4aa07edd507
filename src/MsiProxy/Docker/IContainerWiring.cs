using System.Net;

namespace MsiProxy.Docker;

/// <summary>Where a client container's 169.254.169.254:80 must lead.</summary>
internal sealed record ProxyEndpoint(IPAddress Address, int Port)
{
    public override string ToString() => $"{Address}:{Port}";
}

/// <summary>The outcome of one wiring attempt; <see cref="Detail"/> is what the script or iptables said.</summary>
internal sealed record WiringOutcome(bool Succeeded, string Detail);

/// <summary>Makes a client container's calls to 169.254.169.254 reach the proxy, and undoes it. Both are idempotent.</summary>
internal interface IContainerWiring
{
    string Mode { get; }

    Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken);

    Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken);
}

/// <summary><c>MsiProxy:Docker:Wiring=None</c>: containers reach the proxy another way; registration alone makes them ready.</summary>
internal sealed class NoWiring : IContainerWiring
{
    public string Mode => "None";

    public Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "wiring disabled (MsiProxy:Docker:Wiring=None)"));

    public Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "wiring disabled"));
}

/// <summary>Picks the wiring for the engine's platform when <see cref="WiringMode.Auto"/> is configured.</summary>
internal sealed class AutoWiring(IContainerEngine engine, LinuxDnatWiring linux, WindowsScriptWiring windows) : IContainerWiring
{
    private IContainerWiring? _chosen;

    public string Mode => _chosen?.Mode ?? "Auto";

    public async Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        await (await ChooseAsync(cancellationToken).ConfigureAwait(false)).WireAsync(container, proxy, cancellationToken).ConfigureAwait(false);

    public async Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        await (await ChooseAsync(cancellationToken).ConfigureAwait(false)).UnwireAsync(container, proxy, cancellationToken).ConfigureAwait(false);

    private async Task<IContainerWiring> ChooseAsync(CancellationToken cancellationToken) =>
        _chosen ??= await engine.GetOperatingSystemAsync(cancellationToken).ConfigureAwait(false) == "windows" ? windows : linux;
}
