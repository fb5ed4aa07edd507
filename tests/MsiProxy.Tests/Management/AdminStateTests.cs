using System.Net;
using System.Text.Json;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Upstreams;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Management;

/// <summary>
/// The state file, with the real proxy in process: what the admin API changes is on disk when the call answers, a
/// new proxy on the same file has it back, concurrent calls lose nothing, and a file that cannot be used stops start-up
/// and is left byte for byte as it was. (The restart of the real program is in Hosting/ShutdownAndRestartTests.)
/// </summary>
public sealed class AdminStateTests : IDisposable
{
    private const string Key = "admin-key-0123456789";
    private static readonly UserAssignedIdentity X = UserAssigned(0);
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("msiproxy-state-");

    private string StatePath => Path.Combine(_directory.FullName, "state", "state.json");

    public void Dispose() => _directory.Delete(recursive: true);

    private Task<ProxyHost> StartAsync(ImdsEmulatorServer emulator, Action<Dictionary<string, string?>>? configure = null)
    {
        var settings = Settings(emulator, ("static", "127.0.0.2", ["*"]));
        settings["MsiProxy:Management:ApiKey"] = Key;
        settings["MsiProxy:StateFile"] = StatePath;
        configure?.Invoke(settings);
        return ProxyHost.StartAsync(settings);
    }

    private JsonElement ReadState()
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(StatePath));
        return document.RootElement.Clone();
    }

    private IReadOnlyList<string?> StateClientNames() =>
        [.. ReadState().GetProperty("clients").EnumerateArray().Select(c => c.GetProperty("name").GetString())];

    [Fact]
    public async Task Each_admin_change_is_on_disk_when_the_call_answers_and_a_new_proxy_has_it_back()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(1));
        await using var second = await ImdsEmulatorServer.StartAsync(WithUserAssigned(1));
        var secondUpstream = second.BaseAddress.ToString().TrimEnd('/');
        await using (var proxy = await StartAsync(emulator))
        {
            using var admin = new AdminClient(proxy, Key);
            Assert.False(File.Exists(StatePath)); // nothing changed yet: nothing written

            var created = await admin.PutAsync("/admin/clients/web",
                new { address = "127.0.0.30", identities = new[] { $"client_id={X.ClientId}" }, prefetch = new[] { Arm }, endpoints = new[] { "attested" }, workloadId = "c0ffee" });
            Assert.Equal(HttpStatusCode.Created, created.Status);
            var stored = Assert.Single(ReadState().GetProperty("clients").EnumerateArray());
            Assert.Equal("web", stored.GetProperty("name").GetString());
            Assert.Equal("127.0.0.30", stored.GetProperty("address").GetString());
            Assert.Equal([$"client_id={X.ClientId}"], stored.GetProperty("identities").EnumerateArray().Select(e => e.GetString()));
            Assert.Equal("c0ffee", stored.GetProperty("workloadId").GetString());
            Assert.Equal(1, ReadState().GetProperty("version").GetInt32());

            Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/gone", new { address = "127.0.0.31" })).Status);
            Assert.Equal(["gone", "web"], StateClientNames());
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/gone")).Status);
            Assert.Equal(["web"], StateClientNames()); // configuration's "static" is never in the file

            Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { secondUpstream } })).Status);
            Assert.Equal([secondUpstream], ReadState().GetProperty("upstreams").GetProperty("list").EnumerateArray().Select(e => e.GetString()));
        }

        emulator.State.Reset(); // the first proxy's prefetch went there
        await using var restarted = await StartAsync(emulator);
        var web = restarted.Get<ClientRegistry>().Get("web");
        Assert.NotNull(web);
        Assert.Equal((RegistrationSources.Admin, "c0ffee", "127.0.0.30"), (web.Source, web.WorkloadId, web.Address.ToString()));
        Assert.Equal(["attested"], web.Endpoints);
        Assert.Equal([secondUpstream], restarted.Get<UpstreamSet>().Current);
        using var caller = restarted.CreateClient("127.0.0.30");
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(caller, "https://vault.azure.net", $"client_id={X.ClientId}")).Status);
        Assert.Contains(TokenRequests(second), r => r.Query.Contains(X.ClientId, StringComparison.Ordinal) && r.Query.Contains("vault", StringComparison.Ordinal));
        Assert.Empty(TokenRequests(emulator));
    }

    /// <summary>Issue 16 with item 5: a client's proof and its secret's digest survive a restart — the digest, never the secret.</summary>
    [Fact]
    public async Task A_proof_policy_and_its_digest_survive_a_restart_and_the_secret_is_never_written()
    {
        var secret = Clients.AppServiceProtocolTests.NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using (var proxy = await StartAsync(emulator))
        {
            using var admin = new AdminClient(proxy, Key);
            Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/orders", new
            {
                address = "127.0.0.30", proof = "address+secret", identityHeaderSha256 = Clients.AppServiceProtocolTests.Sha256(secret),
            })).Status);
        }

        Assert.DoesNotContain(secret, File.ReadAllText(StatePath), StringComparison.OrdinalIgnoreCase);
        await using var restarted = await StartAsync(emulator);
        var orders = restarted.Get<ClientRegistry>().Get("orders");
        Assert.NotNull(orders);
        Assert.Equal(ProofPolicy.AddressAndSecret, orders.Proof);
        Assert.True(orders.IdentityHeader?.Matches(secret));
        var query = $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(Arm)}";
        Assert.Equal(200, (await RawHttp.GetAsync(restarted.ClientAddress, query, [("X-IDENTITY-HEADER", secret)], from: "127.0.0.30")).Status);
        Assert.Equal(401, (await RawHttp.GetAsync(restarted.ClientAddress, query, [("X-IDENTITY-HEADER", "guess")], from: "127.0.0.30")).Status);
    }

    [Fact]
    public async Task A_runtime_upstream_list_gives_way_to_a_configuration_changed_since()
    {
        await using var first = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        await using var third = await ImdsEmulatorServer.StartAsync();
        await using (var proxy = await StartAsync(first))
        {
            using var admin = new AdminClient(proxy, Key);
            Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { second.BaseAddress.ToString() } })).Status);
        }

        // The operator edited MsiProxy:Upstreams after the admin API set its list: the newer intent wins.
        await using var reconfigured = await StartAsync(first, s => s["MsiProxy:Upstreams:0"] = third.BaseAddress.ToString().TrimEnd('/'));
        Assert.Equal([third.BaseAddress.ToString().TrimEnd('/')], reconfigured.Get<UpstreamSet>().Current);
        Assert.Contains("MsiProxy:Upstreams changed since", reconfigured.Logs.AllText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Concurrent_admin_calls_lose_no_update_the_file_ends_as_the_registry_does()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);

        // Forty names, twenty of them deleted again while others are still being written, and writers fighting over one name.
        var puts = Enumerable.Range(0, 40).Select(i => admin.PutAsync($"/admin/clients/c{i:D2}", new { address = $"127.0.3.{i}" }));
        var shared = Enumerable.Range(0, 10).Select(i => admin.PutAsync("/admin/clients/shared", new { address = $"127.0.4.{i}" }));
        Assert.All(await Task.WhenAll(puts.Concat(shared)), r => Assert.True(r.Status is HttpStatusCode.OK or HttpStatusCode.Created, r.Body));
        var deletes = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => admin.DeleteAsync($"/admin/clients/c{i * 2:D2}"))
            .Concat(Enumerable.Range(40, 10).Select(i => admin.PutAsync($"/admin/clients/c{i:D2}", new { address = $"127.0.3.{i}" }))));
        Assert.All(deletes, r => Assert.True(r.Status is HttpStatusCode.NoContent or HttpStatusCode.Created, r.Body));

        var registry = proxy.Get<ClientRegistry>().All.Where(r => r.Source == RegistrationSources.Admin).OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        Assert.Equal(31, registry.Count); // 20 odd of the first 40, 10 more, and "shared"
        var stored = ReadState().GetProperty("clients").EnumerateArray().ToList();
        Assert.Equal(registry.Select(r => (r.Name, r.Address.ToString())),
            stored.Select(c => (c.GetProperty("name").GetString()!, c.GetProperty("address").GetString()!)));
        Assert.False(File.Exists(StatePath + ".tmp"));
    }

    [Fact]
    public async Task An_admin_registration_displaced_by_another_source_leaves_the_file_too()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/old-owner", new { address = "127.0.0.50", identities = new[] { "*" } })).Status);
        Assert.Equal(["old-owner"], StateClientNames());

        // A container that now holds the address: after a restart it must not get old-owner's identities.
        proxy.Get<ClientRegistry>().Register(new ClientRegistration
        {
            Name = "new-container", Address = AddressRange.Parse("127.0.0.50"), Source = RegistrationSources.Docker, WorkloadId = "c2",
        });

        await Eventually(() => StateClientNames().Count == 0, TimeSpan.FromSeconds(30), "the displaced registration leaves the state file");
    }

    [Fact]
    public async Task A_change_that_cannot_be_saved_is_a_500_saying_so()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator);
        using var admin = new AdminClient(proxy, Key);
        Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/first", new { address = "127.0.0.60" })).Status);
        var saved = File.ReadAllBytes(StatePath);

        // The state folder is replaced by a file: the next write cannot create its temporary file (root ignores permissions).
        Directory.Delete(Path.GetDirectoryName(StatePath)!, recursive: true);
        File.WriteAllBytes(Path.GetDirectoryName(StatePath)!, saved);

        var refused = await admin.PutAsync("/admin/clients/second", new { address = "127.0.0.61" });
        Assert.Equal(HttpStatusCode.InternalServerError, refused.Status);
        Assert.Equal("state_not_saved", refused.Json.GetProperty("error").GetString());
        Assert.Contains("the change is in effect but could not be saved to " + StatePath, refused.Json.GetProperty("error_description").GetString(),
            StringComparison.Ordinal);
        Assert.NotNull(proxy.Get<ClientRegistry>().Get("second"));
    }

    public static TheoryData<string, string> UnusableFiles => new()
    {
        { "{\"version\":1,\"clients\":[", "is not a state file: not valid JSON at line 1" },
        { "", "is not a state file: not valid JSON" },
        { "null", "it holds JSON null" },
        { "{\"version\":2,\"clients\":[]}", "has format version 2; this proxy reads version 1" },
        { "{\"clients\":[]}", "has format version 0" },
        { "{\"version\":1,\"clients\":[{\"name\":\"a\",\"address\":\"300.1.1.1\"}]}", "clients[0].address: '300.1.1.1' is not an IPv4/IPv6 address" },
        { "{\"version\":1,\"clients\":[{\"name\":\"a\",\"address\":\"0.0.0.0/0\"}]}", "clients[0].address: '0.0.0.0/0' is every address" },
        { "{\"version\":1,\"clients\":[{\"name\":\"a\",\"address\":\"127.0.0.9\",\"identities\":[\"client_id=nope\"]}]}", "clients[0].identities[0]:" },
        { "{\"version\":1,\"clients\":[{\"name\":\"a\\u001b\",\"address\":\"127.0.0.9\"}]}", "clients[0].name: must not contain control" },
        { "{\"version\":1,\"clients\":[{\"name\":\"a\",\"address\":\"127.0.0.9\"},{\"name\":\"a\",\"address\":\"127.0.0.8\"}]}", "clients[1].name: 'a' is there twice" },
        { "{\"version\":1,\"upstreams\":{\"list\":[\"ftp://127.0.0.1:9\"],\"configured\":[]}}", "upstreams.list[0] = 'ftp://127.0.0.1:9'" },
    };

    [Theory]
    [MemberData(nameof(UnusableFiles))]
    public async Task A_file_that_cannot_be_used_stops_start_up_naming_it_and_is_left_untouched(string content, string expected)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, content);
        var before = await File.ReadAllBytesAsync(StatePath);
        var modified = File.GetLastWriteTimeUtc(StatePath);

        var refused = await Assert.ThrowsAsync<ConfigurationException>(() => StartAsync(emulator));

        Assert.StartsWith($"MsiProxy:StateFile = '{StatePath}' ", refused.Message, StringComparison.Ordinal);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
        Assert.Contains($"mv '{StatePath}' '{StatePath}.bad'", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(StatePath));
        Assert.Equal(modified, File.GetLastWriteTimeUtc(StatePath));
        Assert.Equal([Path.GetFileName(StatePath)], Directory.GetFiles(Path.GetDirectoryName(StatePath)!).Select(Path.GetFileName));
    }
}
