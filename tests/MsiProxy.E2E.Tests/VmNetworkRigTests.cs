using System.Text.Json;
using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>The rig shows the bypass MsiProxy has to close, so tests in it can show that it is closed.</summary>
[Trait("Category", "E2E")]
public sealed class VmNetworkRigTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task The_rig_is_faithful_without_MsiProxy_an_unlabelled_container_on_a_normal_bridge_gets_the_fabrics_token_directly()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps"); // a normal bridge network, not --internal
        lab.Run("stranger", "apps");
        var marker = VmLab.Marker("direct");

        var direct = lab.Call("stranger", marker);
        var otherPort = lab.Call("stranger", marker + "-81", VmNetwork.OtherImdsPort);

        Assert.True(direct.Succeeded, "no token straight from IMDS: " + direct.Describe());
        using (var token = JsonDocument.Parse(direct.Output))
        {
            Assert.Equal(VmNetwork.ClientId, token.RootElement.GetProperty("client_id").GetString());
        }

        // IMDS saw the container's request, masqueraded to the VM's address: exactly what it would see on Azure.
        var seen = Assert.Single(await lab.ImdsRequestsWithAsync(marker + ".example"));
        Assert.Equal(VmNetwork.VmAddress, seen.GetProperty("callerAddress").GetString());
        Assert.Equal(200, seen.GetProperty("status").GetInt32());
        Assert.True(otherPort.Succeeded, "another port of 169.254.169.254 is reachable too: " + otherPort.Describe());
        Assert.Single(await lab.ImdsRequestsWithAsync(marker + "-81"));

        // The VM has no other way out: no default route, forwarding on and FORWARD DROP as dockerd leaves a fresh VM.
        Assert.DoesNotContain("default", lab.Rig.InVm("ip", "route").Output, StringComparison.Ordinal);
        Assert.Equal("net.ipv4.ip_forward = 1", lab.Rig.InVm("sysctl", "net.ipv4.ip_forward").Output.Trim());
        Assert.Contains("-P FORWARD DROP", lab.Rig.InVm("iptables", "-S", "FORWARD").Output, StringComparison.Ordinal);
        lab.Passed();
    }
}
