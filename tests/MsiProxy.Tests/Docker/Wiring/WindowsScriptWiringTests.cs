using System.Net;
using Microsoft.Extensions.Options;
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.Interception;
using MsiProxy.Testing;
using MsiProxy.Tests.Docker;

namespace MsiProxy.Tests.Docker.Wiring;

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
