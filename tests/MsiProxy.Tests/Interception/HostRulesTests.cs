using System.Net;
using MsiProxy.Clients;
using MsiProxy.Interception;
using MsiProxy.Interception.Linux;

namespace MsiProxy.Tests.Interception;

/// <summary>The Linux host rules as iptables would receive them (a fake that keeps the tables); the real rules run in the E2E rig.</summary>
public sealed class HostRulesTests
{
    private static readonly ProxyEndpoint Proxy = new(IPAddress.Parse("10.0.0.4"), 80);
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);
    private const string DropJump = "-d 169.254.169.254/32 -m comment --comment \"msi-proxy: no way to IMDS but the proxy\" -j MSIPROXY-IMDS-DROP";
    private const string DnatJump = "-d 169.254.169.254/32 -m comment --comment \"msi-proxy: IMDS from containers to the proxy\" -j MSIPROXY-IMDS-DNAT";

    [Fact]
    public void The_chains_redirect_port_80_from_each_bridge_and_drop_everything_else_with_exempt_sources_first()
    {
        var chains = HostRules.BuildChains(Proxy, ["docker0", "br-+", "mybridge", "br-+"], [AddressRange.Parse("172.18.0.9"), AddressRange.Parse("172.19.0.0/28")]);

        Assert.Equal(
            """
            *filter
            :MSIPROXY-IMDS-DROP - [0:0]
            -A MSIPROXY-IMDS-DROP -s 172.18.0.9/32 -m comment --comment "msi-proxy: exempt" -j RETURN
            -A MSIPROXY-IMDS-DROP -s 172.19.0.0/28 -m comment --comment "msi-proxy: exempt" -j RETURN
            -A MSIPROXY-IMDS-DROP -j DROP
            COMMIT
            *nat
            :MSIPROXY-IMDS-DNAT - [0:0]
            -A MSIPROXY-IMDS-DNAT -s 172.18.0.9/32 -m comment --comment "msi-proxy: exempt" -j RETURN
            -A MSIPROXY-IMDS-DNAT -s 172.19.0.0/28 -m comment --comment "msi-proxy: exempt" -j RETURN
            -A MSIPROXY-IMDS-DNAT -i br-+ -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80
            -A MSIPROXY-IMDS-DNAT -i docker0 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80
            -A MSIPROXY-IMDS-DNAT -i mybridge -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.4:80
            COMMIT

            """.ReplaceLineEndings("\n"), chains);
    }

    [Fact]
    public void Without_a_proxy_address_nothing_is_redirected_but_the_drop_stays_and_bad_interface_names_never_reach_iptables()
    {
        var chains = HostRules.BuildChains(null, ["docker0"], []);
        Assert.Contains("-A MSIPROXY-IMDS-DROP -j DROP", chains, StringComparison.Ordinal);
        Assert.DoesNotContain("DNAT --to", chains, StringComparison.Ordinal);

        var injected = HostRules.BuildChains(Proxy, ["docker0 -j ACCEPT", "a+b", "averyveryverylongname", ""], []);
        Assert.DoesNotContain("-i ", injected, StringComparison.Ordinal);
        Assert.True(HostRules.IsInterfacePattern("br-+"));
        Assert.False(HostRules.IsInterfacePattern("br+-x"));
        Assert.True(HostRules.Matches("br-+", "br-0123456789ab"));
        Assert.False(HostRules.Matches("docker0", "docker01"));
    }

    [Fact]
    public async Task Applying_installs_both_chains_atomically_and_the_jumps_once_and_a_second_apply_only_reads()
    {
        var iptables = FakeIptables.WithDocker();
        var rules = new HostRules(iptables, new HostRulesOptions());
        var chains = HostRules.BuildChains(Proxy, ["docker0", "br-+"], []);

        var first = await rules.ApplyAsync(chains, Now, default);

        Assert.True(first.InPlace, first.Detail);
        Assert.Equal(
        [
            "iptables -w 5 -t filter -S DOCKER-USER",
            "iptables -w 5 -t filter -S MSIPROXY-IMDS-DROP",
            "iptables-restore -w 5 --noflush",
            $"iptables -w 5 -t filter -C DOCKER-USER {DropJump}",
            $"iptables -w 5 -t filter -I DOCKER-USER 1 {DropJump}",
            $"iptables -w 5 -t nat -C PREROUTING {DnatJump}",
            $"iptables -w 5 -t nat -I PREROUTING 1 {DnatJump}",
            "iptables -w 5 -t filter -C FORWARD -j DOCKER-USER",
        ], iptables.Commands);
        Assert.Equal([chains], iptables.RestoreInputs);
        Assert.Equal([DropJump, "-j RETURN"], iptables.Chain("filter", "DOCKER-USER")); // before Docker's RETURN
        Assert.Equal([DnatJump], iptables.Chain("nat", "PREROUTING"));
        Assert.Equal(["-j DROP"], iptables.Chain("filter", "MSIPROXY-IMDS-DROP"));
        Assert.Equal(2, iptables.Chain("nat", "MSIPROXY-IMDS-DNAT").Count);
        Assert.Contains(first.Rules, r => r.Contains("--to-destination 10.0.0.4:80", StringComparison.Ordinal));
        Assert.Contains(first.Rules, r => r.StartsWith("-t nat -A PREROUTING", StringComparison.Ordinal));

        // Read, not rewritten: a rewrite would reset the drop rule's packet counter.
        iptables.Commands.Clear();
        var second = await rules.ApplyAsync(chains, Now, default);
        Assert.Equal("in place", second.Detail);
        Assert.Equal(
        [
            "iptables -w 5 -t filter -S DOCKER-USER",
            "iptables -w 5 -t filter -S MSIPROXY-IMDS-DROP",
            "iptables -w 5 -t nat -S MSIPROXY-IMDS-DNAT",
            $"iptables -w 5 -t filter -C DOCKER-USER {DropJump}",
            $"iptables -w 5 -t nat -C PREROUTING {DnatJump}",
            "iptables -w 5 -t filter -C FORWARD -j DOCKER-USER",
        ], iptables.Commands);
        Assert.Single(iptables.RestoreInputs);
        Assert.Equal([DropJump, "-j RETURN"], iptables.Chain("filter", "DOCKER-USER"));
        Assert.Equal([DnatJump], iptables.Chain("nat", "PREROUTING"));
        Assert.Equal(2, iptables.Chain("nat", "MSIPROXY-IMDS-DNAT").Count);
    }

    [Fact]
    public async Task Before_docker_ever_ran_DOCKER_USER_is_created_and_the_state_says_docker_does_not_jump_to_it_yet()
    {
        var iptables = new FakeIptables();
        var state = await new HostRules(iptables, new HostRulesOptions()).ApplyAsync(HostRules.BuildChains(Proxy, ["docker0"], []), Now, default);

        Assert.False(state.InPlace);
        Assert.StartsWith(HostRules.NoDockerUserJump, state.Detail, StringComparison.Ordinal);
        Assert.Contains("iptables -w 5 -t filter -N DOCKER-USER", iptables.Commands);
        Assert.Equal([DropJump], iptables.Chain("filter", "DOCKER-USER"));
    }

    [Fact]
    public async Task A_failing_restore_or_missing_binary_is_reported_as_not_in_place_with_the_message_and_the_backend_is_configurable()
    {
        var iptables = FakeIptables.WithDocker();
        iptables.Failures["-restore"] = new CommandResult(4, "", "iptables-restore v1.8.9 (nf_tables): line 3 failed");
        var state = await new HostRules(iptables, new HostRulesOptions { Command = "iptables-legacy" }).ApplyAsync(HostRules.BuildChains(Proxy, ["docker0"], []), Now, default);
        Assert.False(state.InPlace);
        Assert.Equal("iptables-legacy-restore failed (exit 4: iptables-restore v1.8.9 (nf_tables): line 3 failed)", state.Detail);
        Assert.All(iptables.Commands, c => Assert.StartsWith("iptables-legacy", c, StringComparison.Ordinal));

        var missing = await new HostRules(new ProcessCommandRunner(), new HostRulesOptions { Command = "/nonexistent/iptables" })
            .ApplyAsync(HostRules.BuildChains(Proxy, ["docker0"], []), Now, default);
        Assert.False(missing.InPlace);
        Assert.Contains("exit 127", missing.Detail, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/iptables", missing.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Uninstalling_removes_every_jump_then_the_chains_and_a_second_uninstall_finds_nothing()
    {
        var iptables = FakeIptables.WithDocker();
        var rules = new HostRules(iptables, new HostRulesOptions());
        await rules.ApplyAsync(HostRules.BuildChains(Proxy, ["docker0"], []), Now, default);
        iptables.Add("nat", "PREROUTING", DnatJump); // a second copy, as a crash between -C and -I elsewhere could leave

        var removed = await rules.RemoveAsync(default);

        Assert.Equal(["jump filter/DOCKER-USER -> MSIPROXY-IMDS-DROP", "jump nat/PREROUTING -> MSIPROXY-IMDS-DNAT", "jump nat/PREROUTING -> MSIPROXY-IMDS-DNAT",
            "chain nat/MSIPROXY-IMDS-DNAT", "chain filter/MSIPROXY-IMDS-DROP"], removed);
        Assert.Empty(iptables.Chain("nat", "PREROUTING"));
        Assert.Equal(["-j RETURN"], iptables.Chain("filter", "DOCKER-USER")); // Docker's own rule stays
        Assert.False(iptables.HasChain("nat", "MSIPROXY-IMDS-DNAT"));
        Assert.False(iptables.HasChain("filter", "MSIPROXY-IMDS-DROP"));
        Assert.Empty(await rules.RemoveAsync(default));
    }
}
