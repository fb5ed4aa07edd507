using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Management;

/// <summary>The admin API on the management listener: authentication, every operation, bad input, concurrency.</summary>
public sealed class AdminApiTests
{
    private const string Key = "admin-key-0123456789";
    private static readonly UserAssignedIdentity X = UserAssigned(0);
    private static readonly UserAssignedIdentity Y = UserAssigned(1);

    private static async Task<ProxyHost> StartAsync(ImdsEmulatorServer emulator, string? key = Key)
    {
        var settings = Settings(emulator, ("static", "127.0.0.2", ["*"]));
        if (key is not null)
        {
            settings["MsiProxy:Management:ApiKey"] = key;
        }

        return await ProxyHost.StartAsync(settings);
    }

    [Fact]
    public async Task Without_or_with_a_wrong_key_it_is_401_and_without_a_configured_key_it_does_not_exist()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using (var proxy = await StartAsync(emulator))
        {
            using var anonymous = new AdminClient(proxy, null);
            using var wrong = new AdminClient(proxy, Key + "x");
            using var right = new AdminClient(proxy, Key);
            foreach (var path in new[] { "/admin/clients", "/admin/cache", "/admin/upstreams" })
            {
                Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(path)).Status);
                Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync(path)).Status);
                Assert.Equal(HttpStatusCode.OK, (await right.GetAsync(path)).Status);
            }

            Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.DeleteAsync("/admin/clients/static")).Status);
            Assert.Equal(HttpStatusCode.OK, (await right.GetAsync("/admin/clients/static")).Status);

            // Never on the client listener, even with the key.
            using var app = proxy.CreateClient("127.0.0.2");
            using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/clients") { Headers = { { "Authorization", "Bearer " + Key }, { "Metadata", "true" } } };
            Assert.Equal(HttpStatusCode.NotFound, (await app.SendAsync(request)).StatusCode);
        }

        await using var keyless = await StartAsync(emulator, key: null);
        using var any = new AdminClient(keyless, Key);
        Assert.Equal(HttpStatusCode.NotFound, (await any.GetAsync("/admin/clients")).Status);
    }

    [Fact]
    public async Task Clients_can_be_listed_registered_read_updated_and_deregistered()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        using var caller = proxy.CreateClient("127.0.0.30");
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(caller)).Status);

        var created = await admin.PutAsync("/admin/clients/web", new { address = "127.0.0.30", identities = new[] { $"client_id={X.ClientId}" }, workloadId = "c0ffee" });
        Assert.Equal(HttpStatusCode.Created, created.Status);
        Assert.Equal("admin", created.Json.GetProperty("source").GetString());
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(caller)).Status);

        var read = await admin.GetAsync("/admin/clients/web");
        Assert.Equal("127.0.0.30", read.Json.GetProperty("address").GetString());
        Assert.Equal("c0ffee", read.Json.GetProperty("workloadId").GetString());
        Assert.False(read.Json.TryGetProperty("containerId", out _));
        Assert.Equal([$"client_id={X.ClientId}"], read.Json.GetProperty("identities").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["static", "web"], (await admin.GetAsync("/admin/clients")).Json.EnumerateArray().Select(e => e.GetProperty("name").GetString()));

        var updated = await admin.PutAsync("/admin/clients/web", new { address = "127.0.0.30", identities = new[] { Y.ClientId } });
        Assert.Equal(HttpStatusCode.OK, updated.Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenAsync(caller, extraQuery: $"client_id={X.ClientId}")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(caller, extraQuery: $"client_id={Y.ClientId}")).Status);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/web")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/admin/clients/web")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync("/admin/clients/web")).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(caller)).Status);
    }

    [Theory]
    [InlineData("{\"address\":\"300.1.1.1\",\"identities\":[]}", "address")]
    [InlineData("{\"identities\":[]}", "address")]
    [InlineData("{\"address\":\"127.0.0.2/40\"}", "address")]
    [InlineData("{\"address\":\"127.0.0.2\",\"identities\":[\"*\",\"client_id=nope\"]}", "identities[1]")]
    [InlineData("{\"address\":\"127.0.0.2\",\"prefetch\":[\"not a uri\"]}", "prefetch[0]")]
    [InlineData("{\"address\":\"127.0.0.2\",\"proof\":\"address+secret\"}", "identityHeaderSha256")]
    [InlineData("{\"address\":\"127.0.0.2\",\"proof\":\"certificate\"}", "proof")]
    [InlineData("{\"address\":\"127.0.0.2\",\"proof\":\"secret\",\"identityHeaderSha256\":\"the secret itself\"}", "identityHeaderSha256")]
    public async Task Malformed_client_bodies_are_400_naming_the_field_and_change_nothing(string body, string field)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        var before = (await admin.GetAsync("/admin/clients/static")).Body;

        var refused = await admin.SendAsync(HttpMethod.Put, "/admin/clients/static", rawBody: body);

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal("invalid_request", refused.Json.GetProperty("error").GetString());
        Assert.StartsWith(field + ":", refused.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.Equal(before, (await admin.GetAsync("/admin/clients/static")).Body);
    }

    [Theory]
    [InlineData("{\"address\":", "body: not valid JSON at line 1, position 12")]
    [InlineData("{\n  \"address\": \"127.0.0.9\",\n  \"identities\": [\"*\",]\n}", "body: not valid JSON at line 3, position 22")]
    [InlineData("", "body: a JSON object is required")]
    [InlineData("[1,2]", "body: must be a JSON object")]
    [InlineData("\"127.0.0.9\"", "body: must be a JSON object")]
    [InlineData("{\"address\":\"127.0.0.9\",\"identities\":\"*\"}", "identities: must be an array of strings")]
    [InlineData("{\"address\":\"127.0.0.9\",\"identities\":[\"*\",7]}", "identities[1]: must be a string")]
    [InlineData("{\"address\":9}", "address: must be a string")]
    [InlineData("{\"address\":\"127.0.0.9\",\"ready\":\"yes\"}", "ready: must be true or false")]
    [InlineData("{\"address\":\"127.0.0.9\",\"identites\":[\"*\"]}", "identites: is not a field of this call")]
    public async Task Malformed_json_is_400_saying_where_and_changes_nothing(string body, string expected)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        var before = await UpstreamListAsync(admin);

        var refused = await admin.SendAsync(HttpMethod.Put, "/admin/clients/new", rawBody: body);

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal("invalid_request", refused.Json.GetProperty("error").GetString());
        Assert.StartsWith(expected, refused.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await admin.GetAsync("/admin/clients/new")).Status);

        var upstreams = await admin.SendAsync(HttpMethod.Put, "/admin/upstreams", rawBody: body);
        Assert.Equal(HttpStatusCode.BadRequest, upstreams.Status);
        Assert.Equal("invalid_request", upstreams.Json.GetProperty("error").GetString());
        Assert.Equal(before, await UpstreamListAsync(admin));
    }

    /// <summary>The upstreams as configured (address, order): their health moves with the probes, whatever the admin API does.</summary>
    private static async Task<string> UpstreamListAsync(AdminClient admin) => string.Join(", ",
        (await admin.GetAsync("/admin/upstreams")).Json.EnumerateArray().Select(u => $"{u.GetProperty("order")}:{u.GetProperty("address")}"));

    [Fact]
    public async Task A_body_that_is_not_json_is_415_with_a_body_and_a_bad_body_without_the_key_is_401()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var http = proxy.CreateManagementClient();
        using var form = new HttpRequestMessage(HttpMethod.Put, "/admin/clients/new")
        {
            Headers = { { "Authorization", "Bearer " + Key } },
            Content = new StringContent("address=127.0.0.9", System.Text.Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        using var unsupported = await http.SendAsync(form);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, unsupported.StatusCode);
        using (var json = JsonDocument.Parse(await unsupported.Content.ReadAsStringAsync()))
        {
            Assert.Equal("unsupported_media_type", json.RootElement.GetProperty("error").GetString());
        }

        // Authentication comes before the body is read: an anonymous caller learns nothing from the parser.
        using var anonymous = new AdminClient(proxy, null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(HttpMethod.Put, "/admin/clients/new", rawBody: "{\"address\":")).Status);
    }

    [Theory]
    [InlineData("bad%0Aname", "name: must not contain control or format characters (U+000A at position 3)")]
    [InlineData("%1B%5B2J", "name: must not contain control or format characters (U+001B at position 0)")]
    [InlineData("evil%E2%80%AEppa", "name: must not contain control or format characters (U+202E at position 4)")]
    [InlineData("%20", "name: is required")]
    public async Task Names_with_control_or_invisible_characters_are_400(string escapedName, string expected)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);

        var refused = await admin.PutAsync("/admin/clients/" + escapedName, new { address = "127.0.0.9", identities = new[] { "*" } });

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal(expected, refused.Json.GetProperty("error_description").GetString());
        Assert.Equal(["static"], (await admin.GetAsync("/admin/clients")).Json.EnumerateArray().Select(c => c.GetProperty("name").GetString()));
    }

    [Theory]
    [InlineData("0.0.0.0/0")]
    [InlineData("::/0")]
    [InlineData("10.9.8.7/0")]
    public async Task Every_address_is_refused_as_a_client_address(string address)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        using var stranger = proxy.CreateClient("127.0.0.99");

        var refused = await admin.PutAsync("/admin/clients/everyone", new { address, identities = new[] { "*" } });

        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Equal($"address: '{address}' is every address: any caller would get this client's identities",
            refused.Json.GetProperty("error_description").GetString());
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(stranger)).Status);
    }

    [Fact]
    public async Task ContainerId_is_still_read_as_the_workload_id_and_a_disagreeing_pair_is_refused()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);

        var legacy = await admin.PutAsync("/admin/clients/old-monitor", new { address = "127.0.0.40", containerId = "4f1c2d" });
        Assert.Equal(HttpStatusCode.Created, legacy.Status);
        Assert.Equal("4f1c2d", legacy.Json.GetProperty("workloadId").GetString());

        var both = await admin.PutAsync("/admin/clients/old-monitor", new { address = "127.0.0.40", containerId = "4f1c2d", workloadId = "4f1c2d" });
        Assert.Equal(HttpStatusCode.OK, both.Status);

        var disagreeing = await admin.PutAsync("/admin/clients/old-monitor", new { address = "127.0.0.40", containerId = "aaaa", workloadId = "bbbb" });
        Assert.Equal(HttpStatusCode.BadRequest, disagreeing.Status);
        Assert.StartsWith("containerId:", disagreeing.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);

        var control = await admin.PutAsync("/admin/clients/old-monitor", new { address = "127.0.0.40", workloadId = "pod\n" });
        Assert.Equal(HttpStatusCode.BadRequest, control.Status);
        Assert.StartsWith("workloadId: must not contain control", control.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.Equal("4f1c2d", (await admin.GetAsync("/admin/clients/old-monitor")).Json.GetProperty("workloadId").GetString());
    }

    [Fact]
    public async Task The_cache_is_listed_without_tokens_flushed_by_client_identity_or_resource_and_refreshed()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        using var app = proxy.CreateClient("127.0.0.2");
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/onlyx", new { address = "127.0.0.40", identities = new[] { X.ClientId } })).Status);
        foreach (var identity in new[] { X, Y })
        {
            foreach (var resource in new[] { Arm, "https://vault.azure.net" })
            {
                Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, resource, $"client_id={identity.ClientId}")).Status);
            }
        }

        var list = await admin.GetAsync("/admin/cache");
        Assert.Equal(4, list.Json.GetArrayLength());
        Assert.All(emulator.State.IssuedTokens, token => Assert.DoesNotContain(token, list.Body, StringComparison.Ordinal));
        Assert.DoesNotContain("access_token", list.Body, StringComparison.Ordinal);
        var first = list.Json[0];
        foreach (var field in new[] { "identity", "resource", "expiresOn", "hits" })
        {
            Assert.True(first.TryGetProperty(field, out _), field);
        }

        // Force refresh: every entry fetched again with bypass_cache.
        var callsBefore = TokenRequests(emulator).Count;
        var refreshed = await admin.SendAsync(HttpMethod.Post, "/admin/cache/refresh?resource=" + Uri.EscapeDataString(Arm));
        Assert.Equal(2, refreshed.Json.GetProperty("refreshed").GetInt32());
        Assert.Equal(callsBefore + 2, TokenRequests(emulator).Count);
        Assert.All(TokenRequests(emulator).Skip(callsBefore), r => Assert.Contains("bypass_cache=true", r.Query, StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.NotFound, (await admin.DeleteAsync("/admin/cache?client=ghost")).Status);
        var badIdentity = await admin.DeleteAsync("/admin/cache?identity=client_id%3Dnope");
        Assert.Equal(HttpStatusCode.BadRequest, badIdentity.Status);
        Assert.StartsWith("identity:", badIdentity.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);

        Assert.Equal(1, (await admin.DeleteAsync($"/admin/cache?identity=client_id%3D{Y.ClientId}&resource={Uri.EscapeDataString(Arm)}")).Json.GetProperty("removed").GetInt32());
        Assert.Equal(2, (await admin.DeleteAsync("/admin/cache?client=onlyx")).Json.GetProperty("removed").GetInt32());
        Assert.Equal(["https://vault.azure.net"], (await admin.GetAsync("/admin/cache")).Json.EnumerateArray().Select(e => e.GetProperty("resource").GetString()));
        Assert.Equal(1, (await admin.DeleteAsync("/admin/cache")).Json.GetProperty("removed").GetInt32());
        Assert.Equal(0, (await admin.GetAsync("/admin/cache")).Json.GetArrayLength());
    }

    [Fact]
    public async Task Upstreams_can_be_read_and_replaced_and_a_bad_list_changes_nothing()
    {
        await using var first = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(first);
        using var admin = new AdminClient(proxy, Key);
        using var app = proxy.CreateClient("127.0.0.2");
        // The list, in order: the health fields beside it change on their own as the active probe runs.
        static List<(string?, int)> Listed(JsonElement upstreams) =>
            [.. upstreams.EnumerateArray().Select(u => (u.GetProperty("address").GetString(), u.GetProperty("order").GetInt32()))];
        var original = Listed((await admin.GetAsync("/admin/upstreams")).Json);
        Assert.Equal([(first.BaseAddress.ToString().TrimEnd('/'), 0)], original);

        foreach (var bad in new object[] { new { upstreams = Array.Empty<string>() }, new { upstreams = new[] { "ftp://127.0.0.1:1" } },
                     new { upstreams = new[] { second.BaseAddress.ToString(), "http://127.0.0.1:1/path" } }, new { } })
        {
            var refused = await admin.PutAsync("/admin/upstreams", bad);
            Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
            Assert.StartsWith("upstreams", refused.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);
            Assert.Equal(original, Listed((await admin.GetAsync("/admin/upstreams")).Json));
        }

        var set = await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { second.BaseAddress.ToString() } });
        Assert.Equal(HttpStatusCode.OK, set.Status);
        Assert.Equal(second.BaseAddress.ToString().TrimEnd('/'), set.Json[0].GetProperty("address").GetString());
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Single(TokenRequests(second));
        Assert.Empty(TokenRequests(first));
    }

    [Fact]
    public async Task Parallel_updates_end_in_one_consistent_state()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(2));
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);

        // Many writers on one name, and many names fighting over one address.
        var sameName = Enumerable.Range(0, 20).Select(i => admin.PutAsync("/admin/clients/shared",
            new { address = $"127.0.1.{i}", identities = new[] { i % 2 == 0 ? X.ClientId : Y.ClientId } }));
        var sameAddress = Enumerable.Range(0, 20).Select(i => admin.PutAsync($"/admin/clients/squatter{i}", new { address = "127.0.2.1", identities = new[] { "*" } }));
        var results = await Task.WhenAll(sameName.Concat(sameAddress));
        Assert.All(results, r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.Created, r.Body));

        var clients = (await admin.GetAsync("/admin/clients")).Json.EnumerateArray().ToList();
        var shared = Assert.Single(clients, c => c.GetProperty("name").GetString() == "shared");
        var squatter = Assert.Single(clients, c => c.GetProperty("address").GetString() == "127.0.2.1");
        Assert.StartsWith("squatter", squatter.GetProperty("name").GetString(), StringComparison.Ordinal);
        Assert.Equal(3, clients.Count); // static, shared, one squatter

        // What the API says is what the proxy does.
        using var sharedCaller = proxy.CreateClient(shared.GetProperty("address").GetString()!);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(sharedCaller)).Status);
        using var squatterCaller = proxy.CreateClient("127.0.2.1");
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(squatterCaller, "https://vault.azure.net")).Status);
    }
}
