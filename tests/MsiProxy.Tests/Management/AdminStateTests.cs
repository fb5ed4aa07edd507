using System.Net;
using System.Text.Json;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.ImdsEmulator;
using MsiProxy.Management;
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

    private Task<ProxyHost> StartAsync(ImdsEmulatorServer emulator, Action<Dictionary<string, string?>>? configure = null,
        Action<IServiceCollection>? services = null)
    {
        var settings = Settings(emulator, ("static", "127.0.0.2", ["*"]));
        settings["MsiProxy:Management:ApiKey"] = Key;
        settings["MsiProxy:StateFile"] = StatePath;
        configure?.Invoke(settings);
        return ProxyHost.StartAsync(settings, services);
    }

    private string JournalPath => StateFile.JournalPath(StatePath);

    /// <summary>What a restart would read from disk now: the snapshot with the journal applied (sorted by name).</summary>
    private (IReadOnlyList<StoredClient> Clients, StoredUpstreams? Upstreams) ReadState()
    {
        var (clients, upstreams) = StateFile.Read(StatePath)!.Current();
        return ([.. clients.Select(c => c.Client)], upstreams);
    }

    private IReadOnlyList<string?> StateClientNames() => [.. ReadState().Clients.Select(c => c.Name)];

    private int JournalLines() => File.Exists(JournalPath) ? File.ReadAllLines(JournalPath).Length : 0;

    private static async Task PutAllAsync(AdminClient admin, IEnumerable<(string Name, string Address)> clients, int concurrency = 8)
    {
        await Parallel.ForEachAsync(clients, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (c, _) =>
        {
            var answer = await admin.PutAsync($"/admin/clients/{c.Name}", new { address = c.Address });
            Assert.True(answer.Status is HttpStatusCode.OK or HttpStatusCode.Created, answer.Body);
        });
    }

    private static List<(string, string)> AdminClients(ProxyHost proxy) =>
        [.. proxy.Get<ClientRegistry>().All.Where(r => r.Source == RegistrationSources.Admin).OrderBy(r => r.Name, StringComparer.Ordinal)
            .Select(r => (r.Name, r.Address.ToString()))];

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
            var stored = Assert.Single(ReadState().Clients);
            Assert.Equal("web", stored.Name);
            Assert.Equal("127.0.0.30", stored.Address);
            Assert.Equal([$"client_id={X.ClientId}"], stored.Identities);
            Assert.Equal("c0ffee", stored.WorkloadId);
            Assert.Equal(StateFile.FormatVersion, StateFile.Read(StatePath)!.Snapshot!.Version);

            Assert.Equal(HttpStatusCode.Created, (await admin.PutAsync("/admin/clients/gone", new { address = "127.0.0.31" })).Status);
            Assert.Equal(["gone", "web"], StateClientNames());
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/gone")).Status);
            Assert.Equal(["web"], StateClientNames()); // configuration's "static" is never in the file

            Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { secondUpstream } })).Status);
            Assert.Equal([secondUpstream], ReadState().Upstreams!.List);
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
        Assert.DoesNotContain(secret, File.Exists(JournalPath) ? File.ReadAllText(JournalPath) : "", StringComparison.OrdinalIgnoreCase);
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
        var stored = ReadState().Clients;
        Assert.Equal(registry.Select(r => (r.Name, r.Address.ToString())), stored.Select(c => (c.Name!, c.Address!)));
        Assert.False(File.Exists(StatePath + ".tmp"));
        Assert.True(JournalLines() > 0, "the changes after the first went to the journal");
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
        { "{\"version\":3,\"clients\":[]}", "has format version 3; this proxy reads versions 1 and 2" },
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

    /// <summary>Issue 17: registrations and deregistrations, through the journal, come back exactly: no more, no fewer, the latest address.</summary>
    [Fact]
    public async Task A_restart_after_registrations_and_deregistrations_has_exactly_the_live_set()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        List<(string, string)> live;
        await using (var proxy = await StartAsync(emulator))
        {
            using var admin = new AdminClient(proxy, Key);
            await PutAllAsync(admin, Enumerable.Range(0, 300).Select(i => ($"n{i:D3}", $"10.1.{i / 256}.{i % 256}")));
            await Parallel.ForEachAsync(Enumerable.Range(0, 100), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
                Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/admin/clients/n{i * 3:D3}")).Status));
            await PutAllAsync(admin, Enumerable.Range(0, 50).Select(i => ($"n{i * 3 + 1:D3}", $"10.2.0.{i}"))); // moved
            live = AdminClients(proxy);
            Assert.Equal(200, live.Count);
            Assert.True(JournalLines() >= 449, $"one journal line per change after the first: {JournalLines()}"); // no compaction below 1024
        }

        await using var restarted = await StartAsync(emulator);
        Assert.Equal(live, AdminClients(restarted));
        Assert.Equal(("n001", "10.2.0.0"), AdminClients(restarted).Single(c => c.Item1 == "n001"));
        Assert.Null(restarted.Get<ClientRegistry>().Get("n000"));
    }

    /// <summary>
    /// Group commit: the changes made while an append is being flushed share the next one. The test holds the first
    /// append until 63 more changes are in, so what it sees does not depend on how the scheduler interleaves the calls.
    /// </summary>
    [Fact]
    public async Task Changes_made_while_an_append_is_flushed_share_the_next_one()
    {
        using var entered = new SemaphoreSlim(0);
        using var release = new ManualResetEventSlim();
        var appends = 0;
        long HoldFirstAppend(string path, IReadOnlyList<JournalEntry> entries, bool created)
        {
            if (Interlocked.Increment(ref appends) == 1)
            {
                entered.Release();
                if (!release.Wait(TimeSpan.FromSeconds(30)))
                {
                    throw new IOException("the test never released the first append");
                }
            }

            return StateFile.Append(path, entries, created);
        }

        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await StartAsync(emulator, services: s => s.AddSingleton<JournalAppender>(HoldFirstAppend));
        using var admin = new AdminClient(proxy, Key);
        await PutAllAsync(admin, [("first", "10.5.1.1")]); // the snapshot, not an append
        var state = proxy.Get<AdminState>();
        var changes = 0;
        // Subscribed after the state's own handler, so a change counted here is already marked for the next save. The
        // held change is counted only once its append is released: the state's handler is the one holding it.
        proxy.Get<ClientRegistry>().Registered += r =>
        {
            if (r.Name.StartsWith('g'))
            {
                Interlocked.Increment(ref changes);
            }
        };

        var held = admin.PutAsync("/admin/clients/g000", new { address = "10.5.2.0" });
        Assert.True(await entered.WaitAsync(TimeSpan.FromSeconds(30)), "the first change's append never started");
        var behind = PutAllAsync(admin, Enumerable.Range(1, 63).Select(i => ($"g{i:D3}", $"10.5.2.{i}")), concurrency: 63);
        await Eventually(() => Volatile.Read(ref changes) == 63, TimeSpan.FromSeconds(30), "63 changes behind the held append",
            () => $"{Volatile.Read(ref changes)} changes");
        Assert.False(held.IsCompleted); // an admin call answers only once its change is on disk
        Assert.False(behind.IsCompleted);
        Assert.Equal(0, state.JournalAppends);

        release.Set();
        Assert.Equal(HttpStatusCode.Created, (await held).Status);
        await behind;
        Assert.Equal(64, JournalLines()); // every change is on disk, one line each...
        Assert.Equal(2, state.JournalAppends); // ...in the held append and one more for all 63 that waited behind it
        Assert.Equal(2, appends);
        Assert.Equal(64, changes);
        Assert.Equal(65, ReadState().Clients.Count);
    }

    [Fact]
    public async Task The_journal_is_compacted_into_the_snapshot_and_the_state_survives_a_restart_after_it()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        List<(string, string)> live;
        await using (var proxy = await StartAsync(emulator))
        {
            using var admin = new AdminClient(proxy, Key);
            // 600 clients registered, then moved twice: 1,799 journal lines, more than max(1024, 600) — but only
            // registrations would never pass the bound, as the journal then has no more lines than there are clients.
            foreach (var net in new[] { 3, 6, 7 })
            {
                await PutAllAsync(admin, Enumerable.Range(0, 600).Select(i => ($"c{i:D4}", $"10.{net}.{i / 256}.{i % 256}")));
            }

            // The snapshot took the journal in: it holds the clients, and the journal is far shorter than the changes.
            await Eventually(() => StateFile.Read(StatePath)!.Snapshot!.Clients!.Count == 600 && JournalLines() < 1024, TimeSpan.FromSeconds(30),
                "a compaction", () => $"{JournalLines()} journal lines");
            Assert.Contains(StateFile.Read(StatePath)!.Snapshot!.Clients!, c => c.Address!.StartsWith("10.6.", StringComparison.Ordinal)
                || c.Address.StartsWith("10.7.", StringComparison.Ordinal)); // taken after the first round

            // Changes after the compaction go on in the journal and count as much as those before.
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/c0000")).Status);
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/c0599")).Status);
            await PutAllAsync(admin, [("c0001", "10.4.0.1")]);
            live = AdminClients(proxy);
            Assert.Equal(598, live.Count);
            Assert.Equal(live, ReadState().Clients.Select(c => (c.Name!, c.Address!)));
        }

        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(StatePath)!, "*.tmp"));
        await using var restarted = await StartAsync(emulator);
        Assert.Equal(live, AdminClients(restarted));
    }

    [Fact]
    public async Task A_torn_last_journal_line_is_ignored_saying_so_and_the_next_change_follows_the_good_lines()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using (var proxy = await StartAsync(emulator))
        {
            using var admin = new AdminClient(proxy, Key);
            await PutAllAsync(admin, [("a", "127.0.0.70")]);
            await PutAllAsync(admin, [("b", "127.0.0.71")]);
            Assert.Equal(1, JournalLines()); // "a" made the snapshot, "b" is a journal line
        }

        // A power cut in the middle of an append: the line has no end.
        await File.AppendAllTextAsync(JournalPath, "{\"put\":{\"name\":\"c\",\"address\":\"127.0.0.7");
        await using (var restarted = await StartAsync(emulator))
        {
            Assert.Equal([("a", "127.0.0.70"), ("b", "127.0.0.71")], AdminClients(restarted));
            var logs = restarted.Logs.AllText();
            Assert.True(logs.Contains($"State journal \"{JournalPath}\": ignored a torn last line (39 bytes after line 1)", StringComparison.Ordinal), logs);
            using var admin = new AdminClient(restarted, Key);
            await PutAllAsync(admin, [("d", "127.0.0.72")]);
        }

        await using var again = await StartAsync(emulator);
        Assert.Equal([("a", "127.0.0.70"), ("b", "127.0.0.71"), ("d", "127.0.0.72")], AdminClients(again));
        Assert.DoesNotContain("torn", again.Logs.AllText(), StringComparison.Ordinal);
    }

    /// <summary>A state file written before the journal (version 1, a snapshot alone) loads, and changes go on from it.</summary>
    [Fact]
    public async Task A_state_file_of_the_format_before_the_journal_loads_and_is_carried_on()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, $$"""
            {
              "version": 1,
              "savedAt": "2026-11-30T10:00:00+00:00",
              "clients": [
                { "name": "legacy", "address": "127.0.0.80", "identities": ["client_id={{X.ClientId}}"], "prefetch": [], "endpoints": [],
                  "workloadId": null, "ready": true, "registeredAt": "2026-11-30T09:00:00+00:00", "proof": "address", "identityHeaderSha256": null },
                { "name": "old", "address": "127.0.0.81", "identities": [], "prefetch": [], "endpoints": [], "ready": true,
                  "registeredAt": "2026-11-30T09:00:00+00:00" }
              ],
              "upstreams": null
            }
            """);
        await using (var proxy = await StartAsync(emulator))
        {
            Assert.Equal([("legacy", "127.0.0.80"), ("old", "127.0.0.81")], AdminClients(proxy));
            Assert.Equal([$"client_id={X.ClientId}"], proxy.Get<ClientRegistry>().Get("legacy")!.Identities.Select(i => i.ToString()));
            using var admin = new AdminClient(proxy, Key);
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/admin/clients/old")).Status);
            await PutAllAsync(admin, [("new", "127.0.0.82")]);
        }

        Assert.Equal(StateFile.FormatVersion, StateFile.Read(StatePath)!.Snapshot!.Version); // rewritten before any journal line
        await using var restarted = await StartAsync(emulator);
        Assert.Equal([("legacy", "127.0.0.80"), ("new", "127.0.0.82")], AdminClients(restarted));
    }

    public static TheoryData<string, string> UnusableJournals => new()
    {
        { "{\"put\":{\"name\":\"a\",\"address\":\"127.0.0.9\"}}\n{\"put\":{\"na\n{\"delete\":\"a\"}\n", "line 2 is not valid JSON" },
        { "{\"delete\":\"a\"}\n{}\n", "line 2 is not a change" },
        { "{\"delete\":\"a\",\"put\":{\"name\":\"b\"}}\n", "line 1 is not a change" },
        { "{\"put\":{\"name\":\"a\",\"address\":\"300.1.1.1\"}}\n", "has a client that cannot be registered: journal line 1: put.address: '300.1.1.1' is not an IPv4/IPv6 address" },
    };

    [Theory]
    [MemberData(nameof(UnusableJournals))]
    public async Task A_journal_line_that_cannot_be_used_before_the_last_stops_start_up_and_both_files_are_left_untouched(string journal, string expected)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(StatePath, "{\"version\":2,\"clients\":[]}");
        await File.WriteAllTextAsync(JournalPath, journal);
        var (snapshot, lines) = (await File.ReadAllBytesAsync(StatePath), await File.ReadAllBytesAsync(JournalPath));

        var refused = await Assert.ThrowsAsync<ConfigurationException>(() => StartAsync(emulator));

        Assert.StartsWith($"MsiProxy:StateFile = '{StatePath}'", refused.Message, StringComparison.Ordinal);
        Assert.Contains(expected, refused.Message, StringComparison.Ordinal);
        Assert.Equal(snapshot, await File.ReadAllBytesAsync(StatePath));
        Assert.Equal(lines, await File.ReadAllBytesAsync(JournalPath));
        Assert.Equal(2, Directory.GetFiles(Path.GetDirectoryName(StatePath)!).Length);
    }

    [Fact]
    public async Task A_journal_without_its_snapshot_stops_start_up()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        Directory.CreateDirectory(Path.GetDirectoryName(StatePath)!);
        await File.WriteAllTextAsync(JournalPath, "{\"put\":{\"name\":\"a\",\"address\":\"127.0.0.9\"}}\n");

        var refused = await Assert.ThrowsAsync<ConfigurationException>(() => StartAsync(emulator));

        Assert.Contains($"its journal '{JournalPath}' exists without its snapshot", refused.Message, StringComparison.Ordinal);
        Assert.Contains($"mv '{JournalPath}' '{JournalPath}.bad'", refused.Message, StringComparison.Ordinal);
    }
}
