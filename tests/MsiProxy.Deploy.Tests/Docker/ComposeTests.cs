using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Docker;

/// <summary>The compose files keep the deployment rules: apps start after a healthy proxy, least privilege, profiles.</summary>
public class ComposeTests
{
    private static IDictionary<string, object?> Services(string os) =>
        (IDictionary<string, object?>)YamlValues.At(YamlValues.Parse(File.ReadAllText(RepositoryPaths.Combine("docker", "compose", os, "compose.yaml"))), "services")!;

    [Theory]
    [InlineData("linux")]
    [InlineData("windows")]
    public void Labelled_apps_start_only_after_the_proxy_is_healthy(string os)
    {
        var apps = Services(os).Where(s => s.Value is IDictionary<string, object?> service && service.TryGetValue("labels", out var labels)
            && labels is IDictionary<string, object?> l && l.TryGetValue("msi-proxy.client", out var v) && (string?)v == "true").ToList();
        Assert.Equal(2, apps.Count);
        Assert.All(apps, app =>
        {
            Assert.Equal("service_healthy", YamlValues.At(app.Value, "depends_on.proxy.condition"));
            var labels = (IDictionary<string, object?>)YamlValues.At(app.Value, "labels")!;
            Assert.False(string.IsNullOrWhiteSpace((string?)labels["msi-proxy.identities"]));
        });
        var healthTest = (List<object?>)YamlValues.At(Services(os)["proxy"], "healthcheck.test")!;
        Assert.Contains("http://localhost:8081/healthz", healthTest);
    }

    [Theory]
    [InlineData("linux", "/var/lib/msi-proxy")]
    [InlineData("windows", @"C:\ProgramData\MsiProxy")]
    public void The_proxy_keeps_its_state_file_on_a_named_volume_and_has_time_to_drain(string os, string stateDirectory)
    {
        var compose = YamlValues.Parse(File.ReadAllText(RepositoryPaths.Combine("docker", "compose", os, "compose.yaml")));
        var proxy = Services(os)["proxy"];
        var volumes = (List<object?>)YamlValues.At(proxy, "volumes")!;
        // The image points MsiProxy:StateFile into this folder; a named volume outlives the container.
        Assert.Contains(volumes, v => v is string s ? s == "state:" + stateDirectory
            : (string?)YamlValues.At(v, "source") == "state" && (string?)YamlValues.At(v, "target") == stateDirectory && (string?)YamlValues.At(v, "type") == "volume");
        Assert.True(((IDictionary<string, object?>)YamlValues.At(compose, "volumes")!).ContainsKey("state"));
        // Longer than MsiProxy:Shutdown:DrainTimeout (10 s): Docker's default 10 s would kill the end of the drain.
        Assert.Equal("20s", YamlValues.At(proxy, "stop_grace_period"));
    }

    [Fact]
    public void Linux_proxy_keeps_host_rules_from_the_host_network_with_only_the_capabilities_they_need_and_the_emulator_is_demo_only()
    {
        var services = Services("linux");
        var proxy = services["proxy"];
        Assert.Contains("/var/run/docker.sock:/var/run/docker.sock:ro", ((List<object?>)YamlValues.At(proxy, "volumes")!).Cast<string>());
        Assert.Equal("host", YamlValues.At(proxy, "network_mode"));
        Assert.Equal(["ALL"], ((List<object?>)YamlValues.At(proxy, "cap_drop")!).Cast<string>());
        Assert.Equal(["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"], ((List<object?>)YamlValues.At(proxy, "cap_add")!).Cast<string>());
        Assert.Equal("Linux", YamlValues.At(proxy, "environment.MsiProxy__Docker__Wiring"));

        // The host rules send containers where the client listener is; management stays on the host's loopback.
        var listen = (string)YamlValues.At(proxy, "environment.MsiProxy__Docker__ProxyAddress")!;
        Assert.Equal($"http://{listen}:80", YamlValues.At(proxy, "environment.ASPNETCORE_URLS"));
        Assert.Equal("80", YamlValues.At(proxy, "environment.MsiProxy__Docker__ProxyPort"));
        Assert.StartsWith("http://127.0.0.1:", (string)YamlValues.At(proxy, "environment.MsiProxy__Management__Urls")!, StringComparison.Ordinal);
        Assert.False(((IDictionary<string, object?>)proxy!).ContainsKey("ports"));

        Assert.Equal(["demo"], ((List<object?>)YamlValues.At(services["imds"], "profiles")!).Cast<string>());
        Assert.Equal(["otel"], ((List<object?>)YamlValues.At(services["aspire-dashboard"], "profiles")!).Cast<string>());
    }

    [Fact]
    public void Windows_proxy_uses_the_named_pipe_and_the_msiserviceclient_admits_only_the_proxy()
    {
        var services = Services("windows");
        var proxy = services["proxy"];
        Assert.Equal("npipe://./pipe/docker_engine", YamlValues.At(proxy, "environment.MsiProxy__Docker__Endpoint"));
        Assert.Equal("npipe", YamlValues.At(proxy, "volumes.0.type"));
        Assert.Equal("http://msiserviceclient:80", YamlValues.At(proxy, "environment.MsiProxy__Upstreams__0"));
        Assert.Equal("service_healthy", YamlValues.At(proxy, "depends_on.msiserviceclient.condition"));
        Assert.Equal(YamlValues.At(proxy, "networks.apps.ipv4_address"), YamlValues.At(services["msiserviceclient"], "environment.MsiProxy__Clients__0__Address"));
    }
}
