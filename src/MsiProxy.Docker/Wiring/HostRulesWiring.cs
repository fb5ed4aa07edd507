using System.Net.NetworkInformation;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Interception;
using MsiProxy.Interception.Linux;

namespace MsiProxy.Docker.Wiring;

/// <summary>
/// The Linux wiring of the Docker monitor: <see cref="HostRules"/> in the host's network namespace cover every container
/// on every bridge, including those that start (or networks that are created) later, so no container is wired on its
/// own. Each monitor pass recomputes the rules (bridges of new networks, msiserviceclient exemptions); they are
/// re-installed when they change, and otherwise re-checked every <see cref="DockerMonitorOptions.ReconcileInterval"/>
/// (something may have flushed them), or on every pass while they are not in place.
/// </summary>
internal sealed partial class HostRulesWiring(HostRules rules, IOptions<DockerMonitorOptions> options, TimeProvider time,
    ILogger<HostRulesWiring> logger) : IContainerWiring
{
    private string? _installed;
    private HostInterceptionState? _state;

    public string Mode => "Linux";

    /// <summary>The interfaces of this network namespace (a test can stand in for the host's).</summary>
    public Func<IReadOnlySet<string>> LocalInterfaces { get; init; } = () =>
        NetworkInterface.GetAllNetworkInterfaces().Select(n => n.Name).ToHashSet(StringComparer.Ordinal);

    public async Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(view);
        var settings = options.Value;
        var patterns = settings.HostRules.EffectiveInterfaces;
        var bridges = view.Networks.Select(n => n.BridgeInterface).OfType<string>().ToList();
        var now = time.GetUtcNow();

        // Rules in a container's own namespace would cover nothing: the engine's bridges must be here.
        var local = LocalInterfaces();
        if (bridges.Count > 0 && !bridges.Any(local.Contains))
        {
            return Report(new HostInterceptionState(false,
                $"the engine's bridges ({string.Join(", ", bridges.Take(3))}) are not in this network namespace: host rules need the proxy "
                + "in the host's network namespace (network_mode: host)", [], now));
        }

        var interfaces = patterns.Concat(bridges.Where(b => !patterns.Any(p => HostRules.Matches(p, b)))).ToList();
        var exempt = view.ExemptSources.Select(AddressRange.ForAddress).Concat(ConfiguredExemptions(settings.HostRules)).ToList();
        var chains = HostRules.BuildChains(view.Proxy, interfaces, exempt);
        if (chains == _installed && _state is { InPlace: true } current && now - current.CheckedAt < settings.ReconcileInterval)
        {
            return current;
        }

        var state = await rules.ApplyAsync(chains, now, cancellationToken).ConfigureAwait(false);
        _installed = state.InPlace ? chains : null;
        return Report(state);
    }

    public Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "covered by the host rules"));

    public Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        Task.FromResult(new WiringOutcome(true, "nothing to undo: the host rules stay"));

    private HostInterceptionState Report(HostInterceptionState state)
    {
        // Logged when something changed: in or out of place, other rules, another reason for not being in place.
        if (state.InPlace != _state?.InPlace || !state.Rules.SequenceEqual(_state?.Rules ?? []) || (!state.InPlace && state.Detail != _state?.Detail))
        {
            if (state.InPlace)
            {
                LogInPlace(state.Detail, string.Join(" | ", state.Rules));
            }
            else
            {
                LogNotInPlace(state.Detail);
            }
        }

        _state = state;
        return state;
    }

    // Validated at start (DockerMonitorOptionsValidator): every entry parses.
    private static IEnumerable<AddressRange> ConfiguredExemptions(HostRulesOptions settings) =>
        settings.ExemptSources.Select(text => AddressRange.TryParse(text, out var range) ? range : null).OfType<AddressRange>();

    [LoggerMessage(Level = LogLevel.Information, Message = "Host rules {Detail}: {Rules}")]
    private partial void LogInPlace(string detail, string rules);

    [LoggerMessage(Level = LogLevel.Error, Message = "Host rules not in place: {Detail}")]
    private partial void LogNotInPlace(string detail);
}
