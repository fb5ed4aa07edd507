using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// The Linux host rules in the VM rig, where the bypass is real (see <see cref="VmNetworkRigTests"/>): with MsiProxy on
/// the VM, nothing reaches the fabric's IMDS except through the proxy — containers started before and after it, on
/// networks created before and after it — and when the proxy dies, containers are refused, not served by IMDS.
/// Every denial is checked at IMDS too: the request carries a marker, and IMDS's log must not have it.
/// </summary>
[Trait("Category", "E2E")]
public sealed class HostRulesEndToEndTests(ITestOutputHelper output)
{
    private static readonly string[] Labelled = ["msi-proxy.client=true", "msi-proxy.identities=" + VmNetwork.ClientId];

    [SkippableFact]
    public async Task Unlabelled_containers_get_403_other_ports_are_dropped_and_a_labelled_container_gets_its_token_on_its_first_call_also_on_networks_created_later()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps");
        lab.Run("early", "apps"); // started before the proxy
        await lab.StartProxyAsync();

        // An unlabelled container: the proxy refuses it, IMDS never hears of it.
        var refused = VmLab.Marker("early");
        VmLab.AssertForbidden(lab.Call("early", refused));
        Assert.Empty(await lab.ImdsRequestsWithAsync(refused));

        // Another port of 169.254.169.254: dropped (no answer until the client gives up), counted by the drop rule, unseen by IMDS.
        var dropsBefore = lab.DroppedPackets();
        var otherPort = VmLab.Marker("port81");
        var dropped = lab.Call("early", otherPort, VmNetwork.OtherImdsPort);
        Assert.True(dropped.ExitCode == 143, "expected the 5 s timeout to end wget (exit 143): " + dropped.Describe());
        Assert.True(lab.DroppedPackets() > dropsBefore, "the drop rule counted nothing");
        Assert.Empty(await lab.ImdsRequestsWithAsync(otherPort));

        // A labelled container whose first act is the token request gets its token on that request: no retry anywhere.
        var first = VmLab.Marker("first");
        VmLab.AssertToken(lab.RunCalling("first", "apps", first, Labelled));
        var upstream = Assert.Single(await lab.ImdsRequestsWithAsync(first));
        Assert.Equal(VmNetwork.VmAddress, upstream.GetProperty("callerAddress").GetString()); // the proxy's own call, not redirected

        // Networks created while the proxy runs: one Docker names br-<id>, one with its own bridge name (covered once
        // the monitor handled the network's create event).
        lab.CreateNetwork("later");
        lab.CreateNetwork("legacy", "-o", "com.docker.network.bridge.name=legacy0");
        await Eventually(() => Task.FromResult(lab.HostRules().Any(r => r.Contains("-i legacy0", StringComparison.Ordinal))), VmLab.Soon,
            details: () => "no rule for legacy0: " + string.Join('\n', lab.HostRules()));
        foreach (var network in new[] { "later", "legacy" })
        {
            lab.Run("stranger-" + network, network);
            var marker = VmLab.Marker("stranger-" + network);
            VmLab.AssertForbidden(lab.Call("stranger-" + network, marker));
            Assert.Empty(await lab.ImdsRequestsWithAsync(marker));
            VmLab.AssertToken(lab.RunCalling("labelled-" + network, network, VmLab.Marker("labelled-" + network), Labelled));
        }

        lab.Passed();
    }

    [SkippableFact]
    public async Task When_the_proxy_dies_containers_are_refused_not_served_by_imds_the_rules_survive_a_restart_unchanged_and_only_the_uninstall_step_removes_them()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps");
        var app = lab.Run("app", "apps", Labelled);
        lab.Run("stranger", "apps");
        var proxy = await lab.StartProxyAsync();
        await lab.WaitWiredAsync("app", app);
        VmLab.AssertToken(lab.Call("app", VmLab.Marker("app")));
        var rules = lab.HostRules();
        Assert.Equal(2, rules.Count(r => r.StartsWith("-A PREROUTING", StringComparison.Ordinal) || r.StartsWith("-A DOCKER-USER", StringComparison.Ordinal)));

        // The proxy dies (SIGKILL: no shutdown code runs). Both containers are refused at once; IMDS hears nothing.
        await proxy.KillAsync();
        foreach (var container in new[] { "app", "stranger" })
        {
            var marker = VmLab.Marker(container + "-dead");
            var call = lab.Call(container, marker);
            Assert.False(call.Succeeded);
            Assert.Contains("Connection refused", call.Error, StringComparison.Ordinal);
            Assert.Empty(await lab.ImdsRequestsWithAsync(marker));
        }

        Assert.Equal(rules, lab.HostRules());

        // Restarted: the same rules, not a second copy.
        proxy = await lab.StartProxyAsync();
        Assert.Equal(rules, lab.HostRules());
        VmLab.AssertToken(lab.Call("app", VmLab.Marker("app-again")));
        await proxy.KillAsync();

        // The explicit uninstall step removes everything: the VM is as it was (the stranger reaches IMDS directly again).
        var uninstalled = lab.Subcommand("uninstall-host-rules");
        Assert.True(uninstalled.Succeeded, uninstalled.Describe());
        Assert.Contains("removed jump filter/DOCKER-USER", uninstalled.Output, StringComparison.Ordinal);
        Assert.Empty(lab.HostRules());
        var bypass = VmLab.Marker("after-uninstall");
        Assert.True(lab.Call("stranger", bypass).Succeeded);
        Assert.Single(await lab.ImdsRequestsWithAsync(bypass));
        Assert.Contains("no MsiProxy host rules were installed", lab.Subcommand("uninstall-host-rules").Output, StringComparison.Ordinal);

        // install-host-rules puts them in before any proxy runs (a boot unit): containers are refused from the start.
        var installed = lab.Subcommand("install-host-rules", "--MsiProxy:Docker:ProxyAddress=" + VmNetwork.VmAddress);
        Assert.True(installed.Succeeded, installed.Describe());
        Assert.Equal(rules, lab.HostRules()); // the same rules the proxy keeps (this VM's networks all match docker0/br-+)
        var early = VmLab.Marker("boot");
        Assert.Contains("Connection refused", lab.Call("stranger", early).Error, StringComparison.Ordinal);
        Assert.Empty(await lab.ImdsRequestsWithAsync(early));
        Assert.True(lab.Subcommand("uninstall-host-rules").Succeeded);
        lab.Passed();
    }
}
