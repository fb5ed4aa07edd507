using System.Diagnostics;
using System.Net;
using System.Text.Json;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Docker.FakeContainerEngine;

namespace MsiProxy.Tests.Docker;

/// <summary>
/// First contact without races, with host-level interception: a container that calls before the monitor has handled
/// its start gets its token on that first request, because the gate asks the monitor (one pass of its loop) and waits.
/// The "engine" never announces these containers unless a test says so, and the periodic reconcile is an hour away.
/// </summary>
public sealed class CallerDiscoveryTests : IAsyncLifetime
{
    private const string Resource = "https://management.azure.com/";
    private const string Identity = "11111111-1111-1111-1111-111111111111";
    private readonly FakeContainerEngine _engine = new();
    private readonly FakeWiring _wiring = new() { HostLevel = true };
    private ImdsEmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions
    {
        UserAssigned = [new(Identity, "a0000000-0000-0000-0000-00000000000a", "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a")],
    });

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task A_labelled_container_calling_before_its_start_event_gets_its_token_on_the_first_request_registered_ready_at_once()
    {
        await using var proxy = await StartProxyAsync();
        var registry = proxy.Get<ClientRegistry>();
        var registrations = new List<bool>();
        registry.Registered += r => { lock (registrations) { registrations.Add(r.Ready); } };
        await Eventually(() => proxy.Get<MonitorState>().LastReconcile is not null);
        var lists = _engine.Lists;

        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(Identity)), announce: false);
        using var client = proxy.CreateClient("127.0.0.2");
        using var response = await client.SendAsync(ImdsRequests.Token(Resource));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(Identity, (await ImdsRequests.ReadJsonAsync(response)).GetProperty("client_id").GetString());
        Assert.Equal(lists + 1, _engine.Lists); // one pass found it
        Assert.Equal([true], registrations);   // host rules cover it: never registered "not ready"
        Assert.Empty(_wiring.Calls);            // and nothing was wired per container
        Assert.Equal(WiringStatus.Wired, proxy.Get<MonitorState>().Get("c1")?.Status);
    }

    /// <summary>
    /// The same first contact for a container whose proof is its secret alone (label <c>msi-proxy.proof=secret</c>):
    /// such a client is not in the address index, so the gate must look for it by its secret again once the pass has
    /// registered it — not answer 403, which no SDK retries.
    /// </summary>
    [Fact]
    public async Task A_secret_only_container_calling_before_its_start_event_gets_its_token_on_the_first_request()
    {
        const string Secret = "9c1e4b7a2d5f8e0b3a6c9d2f5e8b1a4c";
        await using var proxy = await StartProxyAsync();
        await Eventually(() => proxy.Get<MonitorState>().LastReconcile is not null);
        var labels = ClientLabels(Identity);
        labels["msi-proxy.proof"] = "secret";
        _engine.Start(Container("c6", "secretive", "127.0.0.6", labels) with { IdentityHeader = IdentityHeaderDigest.Of(Secret) }, announce: false);
        var upstreamBefore = _emulator.State.Requests.Count(r => r.Path == ImdsRequests.TokenPath);

        using var client = proxy.CreateClient("127.0.0.6");
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(Resource)}");
        request.Headers.Add("X-IDENTITY-HEADER", Secret);
        using var response = await client.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(Identity, (await ImdsRequests.ReadJsonAsync(response)).GetProperty("client_id").GetString());
        Assert.Equal(upstreamBefore + 1, _emulator.State.Requests.Count(r => r.Path == ImdsRequests.TokenPath));
        Assert.Equal(ProofPolicy.Secret, proxy.Get<ClientRegistry>().FindBySecret(Secret)?.Proof);
    }

    [Fact]
    public async Task An_unlabelled_container_gets_403_after_one_pass_and_its_next_calls_ask_the_engine_nothing()
    {
        await using var proxy = await StartProxyAsync();
        await Eventually(() => proxy.Get<MonitorState>().LastReconcile is not null);
        _engine.Start(Container("s1", "stranger", "127.0.0.3"), announce: false);
        var lists = _engine.Lists;

        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.3"));
        Assert.Equal(lists + 1, _engine.Lists);
        var watch = Stopwatch.StartNew();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.3"));
        }

        Assert.Equal(lists + 1, _engine.Lists);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"five known-stranger calls took {watch.Elapsed}");

        // An address on none of the engine's networks is not worth a pass either.
        _engine.SetNetworks(new NetworkInfo("n1", "test", "br-0123456789ab", [AddressRange.Parse("127.0.0.0/29")], []));
        await Eventually(() => _engine.Lists > lists + 1);
        lists = _engine.Lists;
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.9"));
        Assert.Equal(lists, _engine.Lists);
    }

    [Fact]
    public async Task A_caller_the_engine_does_not_list_yet_is_held_until_its_start_event_and_a_caller_nobody_holds_only_for_the_bound()
    {
        await using var proxy = await StartProxyAsync();
        await Eventually(() => proxy.Get<MonitorState>().LastReconcile is not null);

        // The request arrives first (its pass finds nobody at 127.0.0.4); then the engine shows the container, with its start event.
        var lists = _engine.Lists;
        var call = TokenStatusAsync(proxy, "127.0.0.4");
        await Eventually(() => _engine.Lists > lists);
        _engine.Start(Container("c4", "late", "127.0.0.4", ClientLabels(Identity)));
        Assert.Equal(HttpStatusCode.OK, await call.WaitAsync(TimeSpan.FromSeconds(5)));

        // Nobody ever holds 127.0.0.5: 403 once the gate's bound (about 2 s) ends — not sooner, not much later.
        var watch = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.5"));
        Assert.InRange(watch.Elapsed, TimeSpan.FromSeconds(1.8), TimeSpan.FromSeconds(4));
    }

    [Fact]
    public async Task Host_rules_state_is_in_admin_wiring_and_readyz_and_rules_not_in_place_make_the_proxy_unready()
    {
        var msc = new Dictionary<string, string> { ["msi-proxy.role"] = "msiserviceclient" };
        _engine.Start(Container("m1", "msiserviceclient", "127.0.0.7", msc), announce: false);
        await using var proxy = await StartProxyAsync();
        using var management = proxy.CreateManagementClient();
        await Eventually(() => proxy.Get<MonitorState>().HostInterception is not null);
        Assert.Contains(IPAddress.Parse("127.0.0.7"), _wiring.HostViews.Last().ExemptSources);
        Assert.Equal("127.0.0.1:80", _wiring.HostViews.Last().Proxy?.ToString());
        Assert.Equal("br-0123456789ab", Assert.Single(_wiring.HostViews.Last().Networks).BridgeInterface);

        // Ready once the upstream has answered its first probe too; then the host rules are part of the report.
        string? readyBody = null;
        await Eventually(async () =>
        {
            using var ready = await management.GetAsync("/readyz");
            readyBody = await ready.Content.ReadAsStringAsync();
            return ready.StatusCode == HttpStatusCode.OK;
        });
        Assert.Contains("host rules in place", readyBody);

        management.DefaultRequestHeaders.Authorization = new("Bearer", "test-key-0123456789abcdef");
        var wiring = await management.GetFromJsonAsync<JsonElement>("/admin/wiring");
        Assert.True(wiring.GetProperty("hostRules").GetProperty("inPlace").GetBoolean());
        Assert.Equal("-A MSIPROXY-IMDS-DROP -j DROP", wiring.GetProperty("hostRules").GetProperty("rules")[0].GetString());

        _wiring.Failing = true;
        _engine.SetNetworks(new NetworkInfo("n2", "apps", "br-0123456789ac", [AddressRange.Parse("127.0.0.0/8")], []));
        await Eventually(() => proxy.Get<MonitorState>().HostInterception is { InPlace: false });
        using (var unready = await management.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, unready.StatusCode);
            Assert.Contains("host rules not in place: iptables-restore failed", await unready.Content.ReadAsStringAsync());
        }

        // Retried with backoff (100 ms here), not only at the next hourly reconcile.
        _wiring.Failing = false;
        await Eventually(() => proxy.Get<MonitorState>().HostInterception is { InPlace: true });
    }

    private async Task<ProxyHost> StartProxyAsync()
    {
        var settings = ProxyHost.Settings(_emulator.BaseAddress);
        settings["MsiProxy:Management:ApiKey"] = "test-key-0123456789abcdef";
        settings["MsiProxy:Docker:Endpoint"] = "unix:///nonexistent/fake.sock";
        settings["MsiProxy:Docker:Network"] = "test";
        settings["MsiProxy:Docker:ProxyAddress"] = "127.0.0.1";
        settings["MsiProxy:Docker:ReconcileInterval"] = "01:00:00"; // everything here must come from discovery, events or retries
        settings["MsiProxy:Docker:RetryBaseDelay"] = "00:00:00.100";
        settings["MsiProxy:Docker:RetryMaxDelay"] = "00:00:00.200";
        return await ProxyHost.StartAsync(settings, services =>
        {
            services.AddSingleton<IContainerEngine>(_engine);
            services.AddSingleton<IContainerWiring>(_wiring);
        });
    }

    private static async Task<HttpStatusCode> TokenStatusAsync(ProxyHost proxy, string caller)
    {
        using var client = proxy.CreateClient(caller);
        using var request = ImdsRequests.Token(Resource);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

}
