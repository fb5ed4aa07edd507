using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Routing;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Management;
using MsiProxy.Tests.Requests;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Clients;

/// <summary>Which identity a caller gets, seen from the upstream's side.</summary>
public sealed class BindingTests
{
    private static readonly UserAssignedIdentity X = UserAssigned(0);
    private static readonly UserAssignedIdentity Y = UserAssigned(1);

    [Fact]
    public async Task A_request_without_a_selector_gets_the_first_bound_identity_added_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("app", "127.0.0.2", [$"client_id={X.ClientId}", $"client_id={Y.ClientId}"])));
        using var app = proxy.CreateClient("127.0.0.2");

        var answer = await TokenAsync(app);

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Contains($"client_id={X.ClientId}", TokenRequests(emulator).Single().Query, StringComparison.Ordinal);
        Assert.Equal(X.ObjectId, ImdsRequests.DecodeClaims(answer.AccessToken!).GetProperty("oid").GetString());
    }

    [Fact]
    public async Task A_foreign_identity_gets_imdss_own_identity_not_found_and_nothing_goes_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator,
            ("app", "127.0.0.2", [$"client_id={X.ClientId}"]), ("other", "127.0.0.3", [$"client_id={Y.ClientId}"])));
        using var app = proxy.CreateClient("127.0.0.2");

        // IMDS answers an identity the VM does not have like this, and clients depend on it: az CLI falls back from
        // client_id to object_id on a 400, Python's DefaultAzureCredential moves on to the next credential.
        foreach (var query in new[] { $"client_id={Y.ClientId}", $"object_id={Y.ObjectId}", $"msi_res_id={Uri.EscapeDataString(Y.ResourceId)}" })
        {
            var refused = await TokenAsync(app, extraQuery: query);
            Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
            Assert.Equal(CoreAssert.IdentityNotFoundBody, refused.Body);
        }

        Assert.Empty(TokenRequests(emulator));
        var audit = await proxy.Logs.WaitForAsync(MsiProxy.Telemetry.MsiProxyTelemetry.AuditCategory, 3);
        Assert.Equal(3, audit.Count(e => e.Value("Decision") == "denied:identity"));
    }

    [Fact]
    public async Task As_an_option_a_foreign_identity_is_403_naming_the_client_and_selector_but_no_bindings()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        var settings = Settings(emulator, ("app", "127.0.0.2", [$"client_id={X.ClientId}"]), ("other", "127.0.0.3", [$"client_id={Y.ClientId}"]));
        settings["MsiProxy:UnboundIdentity"] = "Forbidden";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var app = proxy.CreateClient("127.0.0.2");

        var refused = await TokenAsync(app, extraQuery: $"client_id={Y.ClientId.ToUpperInvariant()}");

        Assert.Equal(HttpStatusCode.Forbidden, refused.Status);
        var description = refused.Json.GetProperty("error_description").GetString()!;
        Assert.Contains("app", description, StringComparison.Ordinal);
        Assert.Contains(Y.ClientId, description, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(X.ClientId, description, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("other", description, StringComparison.Ordinal);
        Assert.Empty(TokenRequests(emulator));

        // The same identity in another case is the bound one (GUIDs compare case-insensitively).
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, extraQuery: $"client_id={X.ClientId.ToUpperInvariant()}")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(app, extraQuery: $"object_id={Y.ObjectId}")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(app, extraQuery: $"msi_res_id={Uri.EscapeDataString(Y.ResourceId)}")).Status);
        Assert.Single(TokenRequests(emulator));
    }

    [Fact]
    public async Task Star_allows_any_identity_and_adds_none_by_default_while_system_allows_only_the_vms_own()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("any", "127.0.0.2", ["*"]), ("sys", "127.0.0.3", ["system"]),
            ("none", "127.0.0.4", [])));
        using var any = proxy.CreateClient("127.0.0.2");
        using var sys = proxy.CreateClient("127.0.0.3");
        using var none = proxy.CreateClient("127.0.0.4");

        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(any, extraQuery: $"msi_res_id={Uri.EscapeDataString(Y.ResourceId)}")).Status);
        Assert.Contains("msi_res_id=", TokenRequests(emulator)[^1].Query, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(any, "https://vault.azure.net")).Status);
        Assert.DoesNotContain("client_id", TokenRequests(emulator)[^1].Query, StringComparison.Ordinal);
        Assert.DoesNotContain("msi_res_id", TokenRequests(emulator)[^1].Query, StringComparison.Ordinal);

        var system = await TokenAsync(sys, "https://storage.azure.com/");
        Assert.Equal(HttpStatusCode.OK, system.Status);
        Assert.Equal(emulator.State.Options.SystemObjectId, ImdsRequests.DecodeClaims(system.AccessToken!).GetProperty("oid").GetString());
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(sys, extraQuery: $"client_id={X.ClientId}")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(none, extraQuery: $"client_id={X.ClientId}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(none, "https://storage.azure.com/")).Status);
    }

    [Fact]
    public async Task Ipv6_and_cidr_clients_are_recognised_and_neighbours_outside_the_block_are_not()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = Settings(emulator, ("v6", "::1", []), ("block", "127.0.0.8/29", []));
        settings["urls"] = "http://127.0.0.1:0;http://[::1]:0";
        await using var proxy = await ProxyHost.StartAsync(settings);
        var v6Port = proxy.Get<Listeners>().ClientEndpoints.Single(e => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6).Port;

        using var v6 = LoopbackCaller.Create(IPAddress.IPv6Loopback, new Uri($"http://[::1]:{v6Port}"));
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(v6)).Status);

        using var inside = proxy.CreateClient("127.0.0.13");
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(inside)).Status);
        using var outside = proxy.CreateClient("127.0.0.16");
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(outside)).Status);
    }

    [Fact]
    public async Task A_new_owner_of_an_address_is_never_served_the_old_owners_token()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        var settings = Settings(emulator);
        settings["MsiProxy:Management:ApiKey"] = "admin-key-0123456789";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var admin = new AdminClient(proxy, "admin-key-0123456789");
        using var caller = proxy.CreateClient("127.0.0.20");

        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/a", new { address = "127.0.0.20", identities = new[] { X.ClientId }, workloadId = "aaaa" })).Status);
        var ownerA = await TokenAsync(caller);
        Assert.Equal(HttpStatusCode.OK, ownerA.Status);
        Assert.Contains((await admin.GetAsync("/admin/cache")).Json.EnumerateArray(), e => e.GetProperty("identity").GetString() == $"client_id={X.ClientId}");

        // A dead container's IP is reused by another one with another identity.
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/b", new { address = "127.0.0.20", identities = new[] { Y.ClientId }, workloadId = "bbbb" })).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/admin/clients/a")).Status);
        Assert.DoesNotContain((await admin.GetAsync("/admin/cache")).Json.EnumerateArray(), e => e.GetProperty("identity").GetString() == $"client_id={X.ClientId}");

        var ownerB = await TokenAsync(caller);
        Assert.Equal(HttpStatusCode.OK, ownerB.Status);
        Assert.NotEqual(ownerA.AccessToken, ownerB.AccessToken);
        Assert.Equal(Y.ObjectId, ImdsRequests.DecodeClaims(ownerB.AccessToken!).GetProperty("oid").GetString());
        Assert.Equal(CoreAssert.IdentityNotFoundBody, (await TokenAsync(caller, extraQuery: $"client_id={X.ClientId}")).Body);
    }
}
