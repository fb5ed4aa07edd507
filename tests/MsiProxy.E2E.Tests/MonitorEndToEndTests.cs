using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// The container monitor against a real Docker engine: busybox client containers call
/// http://169.254.169.254/metadata/identity/oauth2/token unchanged and are DNAT-ed (in their own namespace) to the
/// proxy, which forwards to an emulator inside the same --internal network.
/// </summary>
[Trait("Category", "E2E")]
public sealed class MonitorEndToEndTests(ITestOutputHelper output)
{
    private const string ClientId = "3b7b2a61-5c1e-4f0e-9d0a-5f6e7d8c9b0a";
    private const string TokenQuery = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(20);

    [SkippableFact]
    public async Task Labelled_clients_get_tokens_through_169_254_169_254_strangers_and_ip_inheritors_are_refused_and_a_restarted_monitor_reconciles()
    {
        var unavailable = DockerLab.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        var watch = Stopwatch.StartNew();
        await using var lab = DockerLab.Create();
        var imds = lab.SubnetBase + "10";
        var proxyIp = lab.SubnetBase + "2";
        lab.Run("imds", 10);
        lab.Run("proxy", 2, "msi-proxy.role=proxy");
        lab.StartEmulator("imds", ClientId);
        var proxy = lab.StartProxy("proxy", $"http://{imds}:80", monitor: true);
        try
        {
            var app = lab.Run("app", 20, "msi-proxy.client=true", "msi-proxy.name=app", "msi-proxy.identities=" + ClientId);
            lab.Run("stranger", 30);
            await WaitWiredAsync(lab, "app", app);

            // 1. The labelled client calls IMDS's address unchanged and gets a token through the proxy.
            AssertToken(lab.Exec("app", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{TokenQuery}'"));
            Assert.Equal(1, CountRules(lab, "app"));

            // 2. An unlabelled container is refused (it calls the proxy directly: it is not wired, so 169.254.169.254 would lead nowhere).
            AssertRefused(lab.Exec("stranger", $"wget -q -O - --header 'Metadata: true' 'http://{proxyIp}{TokenQuery}'"));

            // 3. The client is replaced by a new container with a new IP: it keeps working under the same name.
            lab.Remove("app");
            var appB = lab.Run("app-b", 21, "msi-proxy.client=true", "msi-proxy.name=app", "msi-proxy.identities=" + ClientId);
            await WaitWiredAsync(lab, "app", appB);
            AssertToken(lab.Exec("app-b", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{TokenQuery}'"));

            // 4. A new container that inherits the dead client's IP gets nothing.
            lab.Remove("app-b");
            lab.Run("inheritor", 21);
            await DockerLab.Eventually(() => Clients(lab).All(c => c.GetProperty("address").GetString() != lab.SubnetBase + "21"), Soon,
                () => "the dead client's registration is still there: " + lab.Admin("proxy", "/admin/clients"));
            AssertRefused(lab.Exec("inheritor", $"wget -q -O - --header 'Metadata: true' 'http://{proxyIp}{TokenQuery}'"));

            // 5. The monitor (here: the proxy it runs in) is killed; a client starts meanwhile; after the restart the state is the same.
            var appC = lab.Run("app-c", 22, "msi-proxy.client=true", "msi-proxy.name=app-c", "msi-proxy.identities=" + ClientId);
            await WaitWiredAsync(lab, "app-c", appC);
            DockerLab.Stop(proxy);
            var appD = lab.Run("app-d", 23, "msi-proxy.client=true", "msi-proxy.name=app-d", "msi-proxy.identities=" + ClientId);
            proxy = lab.StartProxy("proxy", $"http://{imds}:80", monitor: true);
            await WaitWiredAsync(lab, "app-c", appC);
            await WaitWiredAsync(lab, "app-d", appD);
            Assert.Equal(["app-c", "app-d"], Clients(lab).Select(c => c.GetProperty("name").GetString()).Order());
            Assert.Equal(1, CountRules(lab, "app-c")); // re-wiring was idempotent
            AssertToken(lab.Exec("app-c", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{TokenQuery}'"));
            AssertToken(lab.Exec("app-d", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{TokenQuery}'"));
            output.WriteLine($"scenario took {watch.Elapsed.TotalSeconds:F1} s");
        }
        catch
        {
            output.WriteLine("proxy output:\n" + lab.OutputOf(proxy));
            throw;
        }
    }

    [SkippableFact]
    public async Task The_proxy_follows_an_msiserviceclient_that_restarts_with_a_new_ip_within_seconds()
    {
        var unavailable = DockerLab.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = DockerLab.Create();
        var imds = lab.SubnetBase + "10";
        var proxyIp = lab.SubnetBase + "2";
        lab.Run("imds", 10);
        lab.StartEmulator("imds", ClientId);

        // The msiserviceclient: a second MsiProxy with the route to "IMDS", serving the proxy as its one client.
        var mscArgs = new[] { "--MsiProxy:Clients:0:Name=front-proxy", "--MsiProxy:Clients:0:Address=" + proxyIp, "--MsiProxy:Clients:0:Identities:0=*" };
        lab.Run("msc-a", 40, "msi-proxy.role=msiserviceclient");
        lab.StartProxy("msc-a", $"http://{imds}:80", monitor: false, mscArgs);

        // The proxy's configured upstream leads nowhere: tokens can only come through the msiserviceclient.
        lab.Run("proxy", 2, "msi-proxy.role=proxy");
        var proxy = lab.StartProxy("proxy", $"http://{lab.SubnetBase}9:80", monitor: true);
        try
        {
            var app = lab.Run("app", 20, "msi-proxy.client=true", "msi-proxy.name=app", "msi-proxy.identities=" + ClientId);
            await WaitWiredAsync(lab, "app", app);
            await DockerLab.Eventually(() => FirstUpstream(lab) == $"http://{lab.SubnetBase}40:80", Soon, () => "upstreams: " + lab.Admin("proxy", "/admin/upstreams"));
            await DockerLab.Eventually(() => lab.Exec("app", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{TokenQuery}'").Exit == 0,
                Soon, () => "no token through the msiserviceclient");

            // Restarted with a new IP (a new container, as after a host reboot or re-deploy).
            lab.Remove("msc-a");
            lab.Run("msc-b", 41, "msi-proxy.role=msiserviceclient");
            lab.StartProxy("msc-b", $"http://{imds}:80", monitor: false, mscArgs);
            var moved = Stopwatch.StartNew();
            await DockerLab.Eventually(() => FirstUpstream(lab) == $"http://{lab.SubnetBase}41:80", TimeSpan.FromSeconds(10),
                () => "upstreams: " + lab.Admin("proxy", "/admin/upstreams"));
            output.WriteLine($"the proxy followed the msiserviceclient after {moved.Elapsed.TotalSeconds:F1} s");

            // A cache miss (another resource) now goes through the new msiserviceclient.
            const string other = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";
            await DockerLab.Eventually(() => lab.Exec("app", $"wget -q -O - --header 'Metadata: true' 'http://169.254.169.254{other}'").Exit == 0,
                Soon, () => "no fresh token through the moved msiserviceclient");
        }
        catch
        {
            output.WriteLine("proxy output:\n" + lab.OutputOf(proxy));
            throw;
        }
    }

    private static async Task WaitWiredAsync(DockerLab lab, string name, string containerId) =>
        await DockerLab.Eventually(() => lab.Admin("proxy", "/admin/wiring") is { } wiring
                && wiring.GetProperty("clients").EnumerateArray().Any(c => c.GetProperty("name").GetString() == name
                    && c.GetProperty("containerId").GetString() == containerId && c.GetProperty("status").GetString() == "wired"),
            Soon, () => $"{name} not wired: " + lab.Admin("proxy", "/admin/wiring"));

    private static List<JsonElement> Clients(DockerLab lab) => lab.Admin("proxy", "/admin/clients")?.EnumerateArray().ToList() ?? [];

    private static string? FirstUpstream(DockerLab lab) =>
        lab.Admin("proxy", "/admin/upstreams") is { } upstreams && upstreams.GetArrayLength() > 0
            ? upstreams[0].GetProperty("address").GetString()?.TrimEnd('/') : null;

    private static int CountRules(DockerLab lab, string container) =>
        DockerLab.Sh($"nsenter -t {lab.Pid(container)} -n iptables -t nat -S OUTPUT").Out.Split('\n').Count(l => l.Contains("169.254.169.254", StringComparison.Ordinal));

    private static void AssertToken((int Exit, string Out, string Err) result)
    {
        Assert.True(result.Exit == 0, $"no token: {result.Err}");
        using var json = JsonDocument.Parse(result.Out);
        Assert.False(string.IsNullOrEmpty(json.RootElement.GetProperty("access_token").GetString()));
        Assert.Equal(ClientId, json.RootElement.GetProperty("client_id").GetString());
    }

    private static void AssertRefused((int Exit, string Out, string Err) result)
    {
        Assert.NotEqual(0, result.Exit);
        Assert.Contains("403", result.Err);
    }
}
