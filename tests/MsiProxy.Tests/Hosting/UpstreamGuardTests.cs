using System.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Hosting;

/// <summary>The fixture guard that keeps every proxy under test away from the real IMDS and the network.</summary>
public sealed class UpstreamGuardTests
{
    [Theory]
    [InlineData("http://169.254.169.254")]
    [InlineData("http://169.254.169.254:80/")]
    [InlineData("http://10.0.0.4")]
    [InlineData("http://10.255.1.2:8080")]
    [InlineData("http://172.21.198.80")]
    [InlineData("http://[fe80::1]")]
    [InlineData("http://imds.example")]
    [InlineData("http://localhost:1234")]
    [InlineData("not a url")]
    public void A_non_loopback_or_named_upstream_is_refused(string upstream)
    {
        var error = Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check([upstream]));
        Assert.Contains(upstream, error.Message);
    }

    [Fact]
    public void One_bad_upstream_among_loopback_ones_is_refused()
    {
        Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check(["http://127.0.0.1:1", "http://169.254.169.254"]));
    }

    [Fact]
    public void An_empty_list_is_refused_because_the_product_default_is_imds()
    {
        Assert.Contains("169.254.169.254", Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check([])).Message);
        Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check([null, " "]));
    }

    [Fact]
    public void Loopback_and_test_made_addresses_pass()
    {
        UpstreamGuard.Check(["http://127.0.0.1:1234", "http://127.0.0.9:80", "http://[::1]:8080"]);
        UpstreamGuard.Check(["http://10.200.0.2:80"], [IPAddress.Parse("10.200.0.2")]);
        Assert.Throws<InvalidOperationException>(() => UpstreamGuard.Check(["http://10.200.0.3:80"], [IPAddress.Parse("10.200.0.2")]));
    }

    [Fact]
    public async Task A_proxy_without_an_upstream_is_not_started()
    {
        var settings = new Dictionary<string, string?> { ["MsiProxy:Clients:0:Name"] = "app", ["MsiProxy:Clients:0:Address"] = "127.0.0.2" };
        await Assert.ThrowsAsync<InvalidOperationException>(() => ProxyHost.StartAsync(settings));
    }
}
