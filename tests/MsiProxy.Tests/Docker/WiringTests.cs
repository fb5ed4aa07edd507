using System.Net;
using Microsoft.Extensions.Options;
using MsiProxy.Docker;
using MsiProxy.Testing;

namespace MsiProxy.Tests.Docker;

public sealed class LinuxDnatWiringTests
{
    private static readonly ProxyEndpoint Proxy = new(IPAddress.Parse("172.30.0.2"), 80);
    private static readonly ContainerInfo Client = FakeContainerEngine.Container("c1", "app", "172.30.0.5", pid: 4242);

    [Fact]
    public async Task Wiring_checks_before_it_adds_the_dnat_rule_inside_the_container_namespace_and_a_second_run_changes_nothing()
    {
        var host = new ScriptedHost();
        var wiring = new LinuxDnatWiring(host);

        var first = await wiring.WireAsync(Client, Proxy, default);
        Assert.True(first.Succeeded, first.Detail);
        Assert.Equal(
        [
            "nsenter -t 4242 -n iptables -w -t nat -S OUTPUT",
            "nsenter -t 4242 -n iptables -w -t nat -C OUTPUT -d 169.254.169.254/32 -p tcp --dport 80 -j DNAT --to-destination 172.30.0.2:80",
            "nsenter -t 4242 -n iptables -w -t nat -A OUTPUT -d 169.254.169.254/32 -p tcp --dport 80 -j DNAT --to-destination 172.30.0.2:80",
        ], host.Commands);

        host.Commands.Clear();
        var second = await wiring.WireAsync(Client, Proxy, default);
        Assert.True(second.Succeeded);
        Assert.StartsWith("unchanged", second.Detail);
        Assert.DoesNotContain(host.Commands, c => c.Contains(" -A ", StringComparison.Ordinal));
        Assert.Single(host.Rules);
    }

    [Fact]
    public async Task A_rule_to_an_old_proxy_address_is_replaced_and_unwiring_removes_the_rule()
    {
        var host = new ScriptedHost();
        host.Rules.Add("-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.30.0.9:80");
        var wiring = new LinuxDnatWiring(host);

        var outcome = await wiring.WireAsync(Client, Proxy, default);
        Assert.True(outcome.Succeeded);
        Assert.Equal("re-pointed to 172.30.0.2:80", outcome.Detail);
        Assert.Contains("nsenter -t 4242 -n iptables -w -t nat -D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.30.0.9:80",
            host.Commands);
        Assert.Equal(["-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.30.0.2:80"], host.Rules);

        var removed = await wiring.UnwireAsync(Client, Proxy, default);
        Assert.Equal(new WiringOutcome(true, "removed"), removed);
        Assert.Empty(host.Rules);
    }

    [Fact]
    public async Task A_failing_iptables_is_reported_with_its_message()
    {
        var host = new ScriptedHost { Fail = "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)" };
        var outcome = await new LinuxDnatWiring(host).WireAsync(Client, Proxy, default);
        Assert.False(outcome.Succeeded);
        Assert.Contains("Permission denied", outcome.Detail);

        var noProcess = await new LinuxDnatWiring(host).WireAsync(Client with { Pid = 0 }, Proxy, default);
        Assert.False(noProcess.Succeeded);
    }

    /// <summary>A stand-in for nsenter + iptables that keeps the nat OUTPUT chain as iptables -S prints it.</summary>
    private sealed class ScriptedHost : IHostCommands
    {
        public List<string> Commands { get; } = [];
        public List<string> Rules { get; } = [];
        public string? Fail { get; init; }

        public Task<ExecResult> RunAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
        {
            Commands.Add(program + " " + string.Join(' ', arguments));
            if (Fail is not null)
            {
                return Task.FromResult(new ExecResult(4, "", Fail));
            }

            var words = arguments.SkipWhile(a => a != "nat").Skip(1).ToArray();
            var rule = string.Join(' ', words[1..]).Replace("-p tcp --dport", "-p tcp -m tcp --dport", StringComparison.Ordinal);
            switch (words[0])
            {
                case "-S":
                    return Task.FromResult(new ExecResult(0, "-P OUTPUT ACCEPT\n" + string.Join('\n', Rules) + "\n", ""));
                case "-C":
                    return Task.FromResult(Rules.Contains("-A " + rule) ? new ExecResult(0, "", "") : new ExecResult(1, "", "iptables: No chain/target/match by that name."));
                case "-A":
                    Rules.Add("-A " + rule);
                    return Task.FromResult(new ExecResult(0, "", ""));
                case "-D":
                    return Task.FromResult(Rules.Remove("-A " + rule) ? new ExecResult(0, "", "") : new ExecResult(1, "", "iptables: Bad rule."));
                default:
                    throw new InvalidOperationException(string.Join(' ', words));
            }
        }
    }
}

public sealed class WindowsScriptWiringTests
{
    private static readonly ProxyEndpoint Proxy = new(IPAddress.Parse("172.28.16.5"), 8080);

    [Fact]
    public async Task The_scripts_folder_is_copied_and_Set_MsiProxyWiring_runs_as_ContainerAdministrator_with_the_proxy_address()
    {
        var engine = new FakeContainerEngine
        {
            ExecAnswer = command => command[0] == "cmd"
                ? new ExecResult(1, "", "INFO: Could not find files for the given pattern(s).")
                : new ExecResult(0, """{"action":"wired","proxy":"172.28.16.5","port":8080,"interface":"vEthernet (Ethernet)","changes":["address","portproxy"],"whatIf":false}""" + "\n", ""),
        };
        var wiring = new WindowsScriptWiring(engine, Options.Create(new DockerMonitorOptions { ScriptsPath = ScriptsFolder() }));
        var container = FakeContainerEngine.Container("w1", "win", "172.28.16.9");

        var outcome = await wiring.WireAsync(container, Proxy, default);

        Assert.Equal(new WiringOutcome(true, "wired"), outcome);
        Assert.Equal([("w1", ScriptsFolder(), @"C:\msi-proxy")], engine.Copies);
        var execs = engine.Execs.ToArray();
        Assert.Equal(["cmd", "/c", "where", "pwsh"], execs[0].Command);
        Assert.Equal("ContainerAdministrator", execs[1].User);
        Assert.Equal(["powershell", "-NoProfile", "-NonInteractive", "-File", @"C:\msi-proxy\Set-MsiProxyWiring.ps1", "-ProxyAddress", "172.28.16.5",
            "-ProxyPort", "8080"], execs[1].Command);

        await wiring.UnwireAsync(container, Proxy, default);
        Assert.Equal("-Remove", engine.Execs.Last().Command.Last());
    }

    [Theory]
    [InlineData(3, """{"action":"error","error":"prerequisite_missing","error_description":"Adding an address requires elevation."}""", "prerequisite missing: Adding an address requires elevation.")]
    [InlineData(4, """{"action":"error","error":"command_failed","error_description":"netsh failed: The requested operation requires elevation."}""", "a command failed: netsh failed: The requested operation requires elevation.")]
    [InlineData(2, "", "invalid input: error: ProxyPort must be between 1 and 65535")]
    [InlineData(1, "not json", "exit code 1: error: ProxyPort must be between 1 and 65535")]
    public void Script_exit_codes_and_json_become_a_failed_outcome_with_the_reason(int exitCode, string stdout, string expected)
    {
        var outcome = WindowsScriptWiring.Interpret(new ExecResult(exitCode, stdout, "error: ProxyPort must be between 1 and 65535\n"));
        Assert.Equal(new WiringOutcome(false, expected), outcome);
    }

    [Fact]
    public async Task Missing_scripts_are_a_clear_failure_and_nothing_is_run()
    {
        var engine = new FakeContainerEngine();
        var wiring = new WindowsScriptWiring(engine, Options.Create(new DockerMonitorOptions { ScriptsPath = "/nonexistent/scripts" }));
        var outcome = await wiring.WireAsync(FakeContainerEngine.Container("w1", "win", "172.28.16.9"), Proxy, default);
        Assert.False(outcome.Succeeded);
        Assert.Contains("MsiProxy:Docker:ScriptsPath", outcome.Detail);
        Assert.Empty(engine.Execs);
    }

    private static string ScriptsFolder() => Path.Combine(RepositoryPaths.Root, "docker", "scripts");
}
