using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;

namespace MsiProxy.Docker;

/// <summary>A registration the monitor made earlier (found again after a monitor restart).</summary>
internal sealed record ManagedRegistration(string Name, string ContainerId);

/// <summary>Where the monitor's decisions go: the in-process registry, or a remote proxy's admin API (standalone monitor).</summary>
internal interface IRegistrationSink
{
    /// <summary>Upstreams kept after the discovered msiserviceclients (the configured ones).</summary>
    IReadOnlyList<string> StaticUpstreams { get; }

    Task<IReadOnlyList<ManagedRegistration>> ListAsync(CancellationToken cancellationToken);

    Task RegisterAsync(ClientRegistration registration, CancellationToken cancellationToken);

    /// <summary>Removes <paramref name="name"/> only while it still belongs to <paramref name="containerId"/>.</summary>
    Task<bool> DeregisterAsync(string name, string containerId, CancellationToken cancellationToken);

    Task SetUpstreamsAsync(IReadOnlyList<string> upstreams, CancellationToken cancellationToken);
}

/// <summary>The monitor inside the proxy: straight into <see cref="ClientRegistry"/> and <see cref="UpstreamSet"/>.</summary>
internal sealed class InProcessRegistrationSink(ClientRegistry registry, UpstreamSet upstreamSet, IOptions<MsiProxyOptions> options)
    : IRegistrationSink
{
    // Only explicitly configured upstreams follow the msiserviceclients: the IMDS default is what the msiserviceclients
    // exist to replace (this host has no route to it), so it is used only when no msiserviceclient runs.
    public IReadOnlyList<string> StaticUpstreams => options.Value.Upstreams;

    public Task<IReadOnlyList<ManagedRegistration>> ListAsync(CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<ManagedRegistration>>(
        [
            .. registry.All.Where(r => r.Source == RegistrationSources.Docker && r.WorkloadId is not null)
                .Select(r => new ManagedRegistration(r.Name, r.WorkloadId!)),
        ]);

    public Task RegisterAsync(ClientRegistration registration, CancellationToken cancellationToken)
    {
        registry.Register(registration);
        return Task.CompletedTask;
    }

    public Task<bool> DeregisterAsync(string name, string containerId, CancellationToken cancellationToken) =>
        Task.FromResult(registry.RemoveWhere(r => r.Name == name && r.WorkloadId == containerId) > 0);

    public Task SetUpstreamsAsync(IReadOnlyList<string> upstreams, CancellationToken cancellationToken)
    {
        upstreamSet.Set(upstreams.Count > 0 ? upstreams : options.Value.EffectiveUpstreams);
        return Task.CompletedTask;
    }
}
