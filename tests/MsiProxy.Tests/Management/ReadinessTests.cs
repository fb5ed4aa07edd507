using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Management;

public sealed class ReadinessTests
{
    [Fact]
    public async Task Readyz_follows_upstream_health_down_and_back_up()
    {
        var emulator = await ImdsEmulatorServer.StartAsync();
        var address = emulator.BaseAddress.ToString();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator));
        using var management = proxy.CreateManagementClient();
        Assert.Equal(HttpStatusCode.OK, (await management.GetAsync("/readyz")).StatusCode);

        await emulator.DisposeAsync();
        await Eventually(async () => (await management.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable,
            TimeSpan.FromSeconds(15), "not ready once the only upstream is down");
        var notReady = await management.GetAsync("/readyz");
        Assert.Contains("no upstream", await notReady.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await using var back = await ImdsEmulatorServer.StartAsync(new EmulatorOptions(), address);
        await Eventually(async () => (await management.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(15), "ready again once the upstream is back");
    }
}
