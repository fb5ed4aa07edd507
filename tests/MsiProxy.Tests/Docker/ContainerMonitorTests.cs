using System.Net;
using System.Text.Json;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Upstreams;
using static MsiProxy.Tests.Docker.FakeContainerEngine;

namespace MsiProxy.Tests.Docker;

/// <summary>The monitor inside a real proxy (Kestrel on loopback), fed by a fake engine whose "container IPs" are loopback addresses.</summary>
public sealed class ContainerMonitorTests : IAsyncLifetime
{
    private const string Resource = "https://management.azure.com/";
    private const string IdentityA = "11111111-1111-1111-1111-111111111111";
    private const string IdentityB = "22222222-2222-2222-2222-222222222222";
    private readonly FakeContainerEngine _engine = new();
    private readonly FakeWiring _wiring = new();
    private ImdsEmulatorServer _emulator = null!;

    public async Task InitializeAsync() => _emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions
    {
        UserAssigned = [new(IdentityA, "a0000000-0000-0000-0000-00000000000a", "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/a"),
            new(IdentityB, "b0000000-0000-0000-0000-00000000000b", "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/b")],
    });

    public async Task DisposeAsync() => await _emulator.DisposeAsync();

    [Fact]
    public async Task At_start_labelled_containers_are_registered_and_wired_and_unlabelled_ones_are_refused()
    {
        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(IdentityA)), announce: false);
        _engine.Start(Container("c2", "stranger", "127.0.0.3"), announce: false);
        await using var proxy = await StartProxyAsync();

        var registry = proxy.Get<ClientRegistry>();
        await Eventually(() => registry.Get("app") is { Ready: true });
        var app = registry.Get("app")!;
        Assert.Equal(("c1", RegistrationSources.Docker, "127.0.0.2"), (app.WorkloadId, app.Source, app.Address.ToString()));
        Assert.Equal(IdentityA, app.Identities.Single().ToString().Replace("client_id=", "", StringComparison.Ordinal));
        Assert.Equal(["wire app -> 127.0.0.1:80"], _wiring.Calls);
        Assert.Equal(1, registry.Count);

        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2"));
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.3"));
    }

    [Fact]
    public async Task Start_and_die_events_register_and_deregister_and_the_cache_entries_go_with_the_client()
    {
        await using var proxy = await StartProxyAsync();
        var registry = proxy.Get<ClientRegistry>();
        await Eventually(() => _engine.Subscriptions == 1);

        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(IdentityA)));
        await Eventually(() => registry.Get("app") is { Ready: true });
        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2"));

        _engine.Die("c1");
        await Eventually(() => registry.Get("app") is null);
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.2"));
        await Eventually(() => proxy.Get<MsiProxy.Caching.TokenCache>().Snapshot().Count == 0);
    }

    [Fact]
    public async Task A_container_that_inherits_an_ip_never_gets_the_old_registration_and_a_late_die_of_the_old_one_removes_nothing()
    {
        await using var proxy = await StartProxyAsync();
        var registry = proxy.Get<ClientRegistry>();
        await Eventually(() => _engine.Subscriptions == 1);
        _engine.Start(Container("old", "old", "127.0.0.2", ClientLabels(IdentityA, name: "app")));
        await Eventually(() => registry.Get("app") is { Ready: true, WorkloadId: "old" });

        // The old container dies but its event is delayed; an unlabelled container gets its IP.
        _engine.Die("old", announce: false);
        _engine.Start(Container("stranger", "stranger", "127.0.0.2"));
        await Eventually(() => registry.Get("app") is null);
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.2"));

        // A labelled newcomer with the same name and IP gets its own identities, not the old ones.
        _engine.Die("stranger", announce: false);
        _engine.Start(Container("new", "new", "127.0.0.2", ClientLabels(IdentityB, name: "app")));
        await Eventually(() => registry.Get("app") is { Ready: true, WorkloadId: "new" });
        Assert.Equal(HttpStatusCode.BadRequest, await TokenStatusAsync(proxy, "127.0.0.2", IdentityA)); // IMDS's "Identity not found"
        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2", IdentityB));

        // The late die events of the old containers must not remove the new registration. Rather than wait a while and
        // look, wait for the pass that handles them: events only trigger reconcile passes, which run one after another,
        // so once a container started after those events is registered, a pass has run since they arrived.
        _engine.Announce("die", "old");
        _engine.Announce("destroy", "stranger");
        _engine.Start(Container("marker", "marker", "127.0.0.5", ClientLabels(IdentityA)));
        await Eventually(() => registry.Get("marker") is { Ready: true }, what: "a pass after the late events registers the marker");
        Assert.Equal("new", registry.Get("app")?.WorkloadId);
        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2", IdentityB));
    }

    [Fact]
    public async Task An_msiserviceclient_that_restarts_with_a_new_ip_is_followed_at_once_and_configured_upstreams_stay_behind_it()
    {
        // The emulator plays the msiserviceclient; the configured upstream is a dead loopback port.
        var msc = new Dictionary<string, string> { ["msi-proxy.role"] = "msiserviceclient", ["msi-proxy.port"] = _emulator.BaseAddress.Port.ToString() };
        _engine.Start(Container("m1", "msiserviceclient", "127.0.0.1", msc), announce: false);
        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(IdentityA)), announce: false);
        await using var proxy = await StartProxyAsync(upstream: "http://127.0.0.1:9");
        var upstreams = proxy.Get<UpstreamSet>();
        var port = _emulator.BaseAddress.Port;
        await Eventually(() => upstreams.Current.SequenceEqual([$"http://127.0.0.1:{port}", "http://127.0.0.1:9"]));
        await Eventually(() => proxy.Get<ClientRegistry>().Get("app") is { Ready: true });
        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2"));

        _engine.Die("m1");
        _engine.Start(Container("m1", "msiserviceclient", "127.0.0.4", msc));
        await Eventually(() => upstreams.Current.SequenceEqual([$"http://127.0.0.4:{port}", "http://127.0.0.1:9"]));

        _engine.Die("m1");
        await Eventually(() => upstreams.Current.SequenceEqual(["http://127.0.0.1:9"]));
    }

    [Fact]
    public async Task A_lost_event_stream_is_reconnected_and_what_happened_meanwhile_is_reconciled()
    {
        await using var proxy = await StartProxyAsync();
        var registry = proxy.Get<ClientRegistry>();
        await Eventually(() => _engine.Subscriptions == 1);

        _engine.BreakStream();
        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(IdentityA)), announce: false); // nobody hears this
        await Eventually(() => _engine.Subscriptions == 2);
        await Eventually(() => registry.Get("app") is { Ready: true });
        Assert.Contains(proxy.Logs.Events, e => e.Message.Contains("event stream lost", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_client_whose_wiring_fails_gets_503_retry_after_1_is_surfaced_in_readyz_and_the_admin_api_and_is_retried()
    {
        _wiring.Failing = true;
        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels(IdentityA)), announce: false);
        await using var proxy = await StartProxyAsync();
        var registry = proxy.Get<ClientRegistry>();
        await Eventually(() => _wiring.Calls.Count >= 2); // retried with backoff

        Assert.Equal(false, registry.Get("app")?.Ready);
        using (var app = proxy.CreateClient("127.0.0.2"))
        using (var request = ImdsRequests.Token(Resource))
        using (var response = await app.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        }

        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.9"));
        using var management = proxy.CreateManagementClient();
        using (var ready = await management.GetAsync("/readyz"))
        {
            // Reported, but one client's wiring does not take the node's proxy out of service.
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            var body = await ready.Content.ReadAsStringAsync();
            Assert.Contains("0/1 client containers wired", body);
            Assert.Contains("app (c1) failed", body);
            Assert.Contains("permission denied (fake)", body);
        }

        management.DefaultRequestHeaders.Authorization = new("Bearer", "test-key-0123456789abcdef");
        var wiring = await management.GetFromJsonAsync<JsonElement>("/admin/wiring");
        var client = wiring.GetProperty("clients")[0];
        Assert.Equal("failed", client.GetProperty("status").GetString());
        Assert.True(client.GetProperty("attempts").GetInt32() >= 2);

        _wiring.Failing = false;
        await Eventually(() => registry.Get("app") is { Ready: true });
        Assert.Equal(HttpStatusCode.OK, await TokenStatusAsync(proxy, "127.0.0.2"));
        wiring = await management.GetFromJsonAsync<JsonElement>("/admin/wiring");
        Assert.Equal("wired", wiring.GetProperty("clients")[0].GetProperty("status").GetString());
        using var readyAgain = await management.GetAsync("/readyz");
        Assert.Contains("1/1 client containers wired", await readyAgain.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_container_with_unusable_labels_is_not_registered_and_is_reported()
    {
        _engine.Start(Container("c1", "app", "127.0.0.2", ClientLabels("not an identity")), announce: false);
        await using var proxy = await StartProxyAsync();
        await Eventually(() => proxy.Get<MonitorState>().Get("c1")?.Status == WiringStatus.Invalid);
        Assert.Null(proxy.Get<ClientRegistry>().Get("app"));
        Assert.Contains("msi-proxy.identities", proxy.Get<MonitorState>().Get("c1")!.Detail);
        Assert.Empty(_wiring.Calls);
        Assert.Equal(HttpStatusCode.Forbidden, await TokenStatusAsync(proxy, "127.0.0.2"));
    }

    private async Task<ProxyHost> StartProxyAsync(string? upstream = null)
    {
        var settings = ProxyHost.Settings(upstream is null ? _emulator.BaseAddress : new Uri(upstream));
        settings["MsiProxy:Management:ApiKey"] = "test-key-0123456789abcdef";
        settings["MsiProxy:Docker:Endpoint"] = "unix:///nonexistent/fake.sock";
        settings["MsiProxy:Docker:Network"] = "test";
        settings["MsiProxy:Docker:ProxyAddress"] = "127.0.0.1";
        settings["MsiProxy:Docker:ReconcileInterval"] = "01:00:00"; // everything here must come from events or retries
        settings["MsiProxy:Docker:RetryBaseDelay"] = "00:00:00.100";
        settings["MsiProxy:Docker:RetryMaxDelay"] = "00:00:00.200";
        return await ProxyHost.StartAsync(settings, services =>
        {
            services.AddSingleton<IContainerEngine>(_engine);
            services.AddSingleton<IContainerWiring>(_wiring);
        });
    }

    private static async Task<HttpStatusCode> TokenStatusAsync(ProxyHost proxy, string caller, string? clientId = null)
    {
        using var client = proxy.CreateClient(caller);
        using var request = ImdsRequests.Token(Resource, clientId is null ? null : "client_id=" + clientId);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }
}
