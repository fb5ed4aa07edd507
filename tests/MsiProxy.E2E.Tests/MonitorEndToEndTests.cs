using System.Diagnostics;
using System.Net;
using System.Text.Json;
using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// The container monitor against the VM rig's real dockerd, with the host rules as wiring: busybox clients call
/// http://169.254.169.254/metadata/identity/oauth2/token unchanged; who gets a token follows the containers that run
/// now — replaced clients, inherited addresses, a monitor restarted while containers came and went, an
/// msiserviceclient that moved.
/// </summary>
[Trait("Category", "E2E")]
public sealed class MonitorEndToEndTests(ITestOutputHelper output)
{
    private const string Subnet = "172.30.5";
    private static readonly string Identities = "msi-proxy.identities=" + VmNetwork.ClientId;

    [SkippableFact]
    public async Task Labelled_clients_get_tokens_strangers_and_ip_inheritors_are_refused_and_a_restarted_monitor_reconciles()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps", "--subnet", Subnet + ".0/24");
        var proxy = await lab.StartProxyAsync();
        var app = lab.RunAt("app", "apps", Subnet + ".20", "msi-proxy.client=true", "msi-proxy.name=app", Identities);
        lab.RunAt("stranger", "apps", Subnet + ".30");
        await lab.WaitWiredAsync("app", app);

        // 1. The labelled client calls IMDS's address unchanged and gets a token through the proxy; the stranger is refused.
        VmLab.AssertToken(lab.Call("app", VmLab.Marker("app")));
        VmLab.AssertForbidden(lab.Call("stranger", VmLab.Marker("stranger")));

        // 2. The client is replaced by a new container with a new IP: it keeps working under the same name.
        lab.Remove("app");
        var appB = lab.RunAt("app-b", "apps", Subnet + ".21", "msi-proxy.client=true", "msi-proxy.name=app", Identities);
        await lab.WaitWiredAsync("app", appB);
        VmLab.AssertToken(lab.Call("app-b", VmLab.Marker("app-b")));

        // 3. A new container that inherits the dead client's IP gets nothing.
        lab.Remove("app-b");
        lab.RunAt("inheritor", "apps", Subnet + ".21");
        await Eventually(async () => (await ClientsAsync(lab)).All(c => c.GetProperty("address").GetString() != Subnet + ".21"), VmLab.Soon,
            details: () => "the dead client's registration is still there");
        var inherited = VmLab.Marker("inheritor");
        VmLab.AssertForbidden(lab.Call("inheritor", inherited));
        Assert.Empty(await lab.ImdsRequestsWithAsync(inherited));

        // 4. The monitor (here: the proxy it runs in) is killed; a client starts meanwhile; after the restart the state is the same.
        var appC = lab.RunAt("app-c", "apps", Subnet + ".22", "msi-proxy.client=true", "msi-proxy.name=app-c", Identities);
        await lab.WaitWiredAsync("app-c", appC);
        var rules = lab.HostRules();
        await proxy.KillAsync();
        var appD = lab.RunAt("app-d", "apps", Subnet + ".23", "msi-proxy.client=true", "msi-proxy.name=app-d", Identities);
        await lab.StartProxyAsync();
        await lab.WaitWiredAsync("app-c", appC);
        await lab.WaitWiredAsync("app-d", appD);
        Assert.Equal(["app-c", "app-d"], (await ClientsAsync(lab)).Select(c => c.GetProperty("name").GetString()).Order());
        Assert.Equal(rules, lab.HostRules()); // the restart changed nothing in the host rules
        VmLab.AssertToken(lab.Call("app-c", VmLab.Marker("app-c")));
        VmLab.AssertToken(lab.Call("app-d", VmLab.Marker("app-d")));
        lab.Passed();
    }

    [SkippableFact]
    public async Task The_proxy_follows_an_msiserviceclient_that_restarts_with_a_new_ip_within_seconds_and_only_it_is_exempt()
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        await using var lab = await VmLab.StartAsync(output);
        var gateway = Subnet + ".1"; // the VM's address on the bridge: where the proxy's calls to the msiserviceclient come from
        lab.CreateNetwork("apps", "--subnet", Subnet + ".0/24", "--gateway", gateway);

        // The msiserviceclient: a second MsiProxy in a labelled container, serving the proxy as its one client and calling IMDS itself.
        var mscArgs = new[] { "--MsiProxy:Clients:0:Name=front-proxy", "--MsiProxy:Clients:0:Address=" + gateway, "--MsiProxy:Clients:0:Identities:0=*" };
        lab.RunAt("msc-a", "apps", Subnet + ".40", "msi-proxy.role=msiserviceclient");
        StartMsiServiceClient(lab, "msc-a", mscArgs);

        // The proxy's configured upstream leads nowhere (an unused fabric address): tokens can only come through the msiserviceclient.
        var deadUpstream = "http://10.99.0.9:80";
        await lab.StartProxyAsync([deadUpstream], [IPAddress.Parse("10.99.0.9")]);
        var app = lab.RunAt("app", "apps", Subnet + ".20", "msi-proxy.client=true", "msi-proxy.name=app", Identities);
        await lab.WaitWiredAsync("app", app);
        await Eventually(async () => await FirstUpstreamAsync(lab) == $"http://{Subnet}.40:80", VmLab.Soon, details: () => "the msiserviceclient is not the first upstream");
        await Eventually(() => Task.FromResult(lab.Call("app", VmLab.Marker("via-msc-a")).Succeeded), VmLab.Soon, details: () => "no token through the msiserviceclient");

        // Only the msiserviceclient is exempt from the host rules; the app still cannot reach IMDS on its own.
        Assert.Contains(lab.HostRules(), r => r.Contains($"-s {Subnet}.40/32", StringComparison.Ordinal));
        Assert.DoesNotContain(lab.HostRules(), r => r.Contains($"-s {Subnet}.20/32", StringComparison.Ordinal));

        // Restarted with a new IP (a new container, as after a host reboot or re-deploy).
        lab.Remove("msc-a");
        lab.RunAt("msc-b", "apps", Subnet + ".41", "msi-proxy.role=msiserviceclient");
        StartMsiServiceClient(lab, "msc-b", mscArgs);
        var moved = Stopwatch.StartNew();
        await Eventually(async () => await FirstUpstreamAsync(lab) == $"http://{Subnet}.41:80", TimeSpan.FromSeconds(10),
            details: () => "the proxy did not follow the msiserviceclient");
        output.WriteLine($"the proxy followed the msiserviceclient after {moved.Elapsed.TotalSeconds:F1} s");
        await Eventually(() => Task.FromResult(lab.HostRules().Any(r => r.Contains($"-s {Subnet}.41/32", StringComparison.Ordinal))
            && !lab.HostRules().Any(r => r.Contains($"-s {Subnet}.40/32", StringComparison.Ordinal))), VmLab.Soon, details: () => "the exemption did not move");

        // A cache miss (another resource) now goes through the new msiserviceclient.
        var fresh = VmLab.Marker("via-msc-b");
        await Eventually(() => Task.FromResult(lab.Call("app", fresh).Succeeded), VmLab.Soon, details: () => "no fresh token through the moved msiserviceclient");
        Assert.NotEmpty(await lab.ImdsRequestsWithAsync(fresh));
        lab.Passed();
    }

    private static void StartMsiServiceClient(VmLab lab, string container, string[] arguments) =>
        lab.Rig.StartMsiProxy([$"http://{VmNetwork.MetadataAddress}"], [],
            ["--urls", "http://0.0.0.0:80", "--MsiProxy:Management:Urls=http://127.0.0.1:8081", .. arguments], container);

    private static async Task<List<JsonElement>> ClientsAsync(VmLab lab) =>
        (await lab.AdminAsync("/admin/clients"))?.EnumerateArray().ToList() ?? [];

    private static async Task<string?> FirstUpstreamAsync(VmLab lab) =>
        await lab.AdminAsync("/admin/upstreams") is { } upstreams && upstreams.GetArrayLength() > 0
            ? upstreams[0].GetProperty("address").GetString()?.TrimEnd('/') : null;
}
