using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

public sealed class GateSmokeTests
{
    private const string TokenPath = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/";

    [Fact]
    public async Task Registered_caller_gets_a_token_and_an_unregistered_one_is_refused_without_an_upstream_call()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));

        using var app = proxy.CreateClient("127.0.0.2");
        using var request = new HttpRequestMessage(HttpMethod.Get, TokenPath) { Headers = { { "Metadata", "true" } } };
        using var response = await app.SendAsync(request);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var before = emulator.State.Counters.TokenRequests;

        using var stranger = proxy.CreateClient("127.0.0.3");
        using var refused = new HttpRequestMessage(HttpMethod.Get, TokenPath) { Headers = { { "Metadata", "true" }, { "X-Forwarded-For", "127.0.0.2" } } };
        using var denied = await stranger.SendAsync(refused);
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("127.0.0.3", await denied.Content.ReadAsStringAsync());
        Assert.Equal(before, emulator.State.Counters.TokenRequests);
    }

    [Fact]
    public void The_guard_refuses_a_proxy_whose_upstream_is_imds()
    {
        var error = Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check(["http://169.254.169.254"]));
        Assert.Contains("169.254.169.254", error.Message);
        Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check([]));
        UpstreamGuard.Check(["http://127.0.0.1:1234"]);
    }
}
