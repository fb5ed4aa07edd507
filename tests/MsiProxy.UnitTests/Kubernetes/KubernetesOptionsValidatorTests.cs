using MsiProxy.Configuration;
using MsiProxy.Kubernetes;

namespace MsiProxy.UnitTests.Kubernetes;

public sealed class KubernetesOptionsValidatorTests
{
    private static string[] Errors(Action<KubernetesOptions> change)
    {
        var options = new MsiProxyOptions { Kubernetes = { Enabled = true, NodeName = "node-1" } };
        change(options.Kubernetes);
        var result = new KubernetesOptionsValidator().Validate(null, options);
        return result.Failed ? [.. result.Failures!] : [];
    }

    [Fact]
    public void A_valid_configuration_passes_and_a_disabled_one_is_not_checked()
    {
        Assert.Empty(Errors(_ => { }));
        Assert.Empty(Errors(k => k.ApiServer = "http://127.0.0.1:6443"));
        Assert.Empty(Errors(k => k.Dnat = new DnatOptions { Enabled = true, Interface = "cni+", ProxyAddress = "10.224.0.4", ProxyPort = 8090 }));
        Assert.Empty(Errors(k => { k.Enabled = false; k.NodeName = null; }));
    }

    [Fact]
    public void Mistakes_name_the_key()
    {
        Assert.Contains(Errors(k => k.NodeName = " "), e => e.StartsWith("MsiProxy:Kubernetes:NodeName is required", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.ApiServer = "http://10.0.0.1:6443"), e => e.Contains("must use https", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.ApiServer = "ftp://x"), e => e.Contains("is not an http(s) URL", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.ResyncInterval = TimeSpan.Zero), e => e.Contains("ResyncInterval", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.SecretRefreshInterval = TimeSpan.Zero), e => e.StartsWith("MsiProxy:Kubernetes:SecretRefreshInterval", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.Dnat = new DnatOptions { Enabled = true, ProxyAddress = "10.224.0.4" }),
            e => e.Contains("needs Interface", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.Dnat = new DnatOptions { Enabled = true, Interface = "cni+", ProxyAddress = "node" }),
            e => e.Contains("Dnat:ProxyAddress", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.Dnat = new DnatOptions { Enabled = true, Interface = "eth0; rm -rf /", ProxyAddress = "10.0.0.1" }),
            e => e.Contains("Dnat:Interface", StringComparison.Ordinal));
        Assert.Contains(Errors(k => k.Dnat = new DnatOptions { Enabled = true, SourceCidr = "10.244.0.0/99", ProxyAddress = "10.0.0.1" }),
            e => e.Contains("Dnat:SourceCidr", StringComparison.Ordinal));
    }
}
