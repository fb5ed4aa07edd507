using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.Interception;
using MsiProxy.Tests.Interception;
using MsiProxy.Interception.Linux;

namespace MsiProxy.Tests.Docker.Wiring;

/// <summary>What the Docker monitor's Linux wiring makes of the engine's networks and msiserviceclients, pass after pass.</summary>
public sealed class HostRulesWiringTests
{
    private static readonly ProxyEndpoint Proxy = new(IPAddress.Parse("10.0.0.4"), 80);
    private static readonly NetworkInfo DefaultBridge = new("d1", "bridge", "docker0", [AddressRange.Parse("172.17.0.0/16")], [IPAddress.Parse("172.17.0.1")]);
    private static readonly NetworkInfo UserNetwork = new("u1", "apps", "br-0123456789ab", [AddressRange.Parse("172.18.0.0/16")], []);
    private static readonly NetworkInfo CustomBridge = new("c1", "legacy", "legacy0", [AddressRange.Parse("172.19.0.0/16")], []);
    private readonly FakeIptables _iptables = FakeIptables.WithDocker();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));

    [Fact]
    public async Task Bridges_outside_the_default_patterns_get_their_own_rule_and_msiserviceclients_and_configured_sources_are_exempt()
    {
        var wiring = Wiring(new DockerMonitorOptions { HostRules = new HostRulesOptions { ExemptSources = ["10.9.0.0/24"] } });

        var state = await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge, UserNetwork, CustomBridge], [IPAddress.Parse("172.18.0.7")]), default);

        Assert.NotNull(state);
        Assert.True(state.InPlace, state.Detail);
        Assert.Equal(
        [
            "-s 10.9.0.0/24 -m comment --comment \"msi-proxy: exempt\" -j RETURN",
            "-s 172.18.0.7/32 -m comment --comment \"msi-proxy: exempt\" -j RETURN",
            "-i br-+ -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80",
            "-i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80",
            "-i legacy0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80",
        ], _iptables.Chain("nat", HostRules.NatChain));
        Assert.Equal(3, _iptables.Chain("filter", HostRules.FilterChain).Count);
        Assert.Equal("covered by the host rules", (await wiring.WireAsync(null!, Proxy, default)).Detail);
    }

    [Fact]
    public async Task Unchanged_rules_are_not_rewritten_every_pass_but_rechecked_after_the_interval_and_a_new_network_is_applied_at_once()
    {
        var wiring = Wiring(new DockerMonitorOptions { ReconcileInterval = TimeSpan.FromSeconds(30) });
        await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge], []), default);
        var restores = _iptables.RestoreInputs.Count;

        _time.Advance(TimeSpan.FromSeconds(10));
        await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge], []), default);
        Assert.Equal(restores, _iptables.RestoreInputs.Count);

        await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge, CustomBridge], []), default);
        Assert.Equal(restores + 1, _iptables.RestoreInputs.Count);
        Assert.Contains("-i legacy0", _iptables.RestoreInputs[^1], StringComparison.Ordinal);

        // Something flushed PREROUTING meanwhile: the periodic check puts the jump back.
        _iptables.Flush("nat", "PREROUTING");

        _time.Advance(TimeSpan.FromSeconds(31));
        var state = await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge, CustomBridge], []), default);
        Assert.True(state!.InPlace, state.Detail);
        Assert.Equal("installed (jump added in PREROUTING)", state.Detail);
        Assert.Single(_iptables.Chain("nat", "PREROUTING"));
        Assert.Equal(restores + 1, _iptables.RestoreInputs.Count); // the chains were intact: read, not rewritten

        // Someone edited our chain: the next check rewrites it.
        _iptables.Flush("filter", HostRules.FilterChain);
        _time.Advance(TimeSpan.FromSeconds(31));
        state = await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge, CustomBridge], []), default);
        Assert.Equal("installed (chains written)", state!.Detail);
        Assert.Equal(["-j DROP"], _iptables.Chain("filter", HostRules.FilterChain));
    }

    [Fact]
    public async Task In_a_namespace_without_the_engines_bridges_nothing_is_installed_and_the_state_says_where_the_proxy_must_run()
    {
        var wiring = Wiring(new DockerMonitorOptions(), local: ["lo", "eth0"]);

        var state = await wiring.ReconcileHostAsync(new HostView(Proxy, [DefaultBridge, UserNetwork], []), default);

        Assert.False(state!.InPlace);
        Assert.Contains("network_mode: host", state.Detail, StringComparison.Ordinal);
        Assert.Empty(_iptables.Commands);
    }

    private HostRulesWiring Wiring(DockerMonitorOptions options, string[]? local = null) =>
        new(new HostRules(_iptables, options.HostRules), Options.Create(options), _time, NullLogger<HostRulesWiring>.Instance)
        {
            LocalInterfaces = () => (local ?? ["lo", "eth0", "docker0", "br-0123456789ab", "legacy0"]).ToHashSet(),
        };
}
