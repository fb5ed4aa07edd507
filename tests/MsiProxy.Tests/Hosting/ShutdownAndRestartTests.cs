using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// The real program (<c>dotnet MsiProxy.dll</c>) stopped and started as Docker and Kubernetes do it: SIGTERM under load
/// drains (not ready first, every accepted request answered, exit 0), a restart keeps what the admin API registered,
/// and a state file it cannot use stops it with exit code 2 without touching the file. The upstream is an emulator on
/// loopback that this test started.
/// </summary>
[Collection(Serial.Name)]
public sealed class ShutdownAndRestartTests : IDisposable
{
    private const string Key = "admin-key-0123456789";
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(90);
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("msiproxy-restart-");

    private string StatePath => Path.Combine(_directory.FullName, "state.json");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task SIGTERM_under_load_makes_readyz_fail_first_answers_every_accepted_request_and_exits_0()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        // Every forwarded request is slow upstream, so there are requests in flight when the signal comes.
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/instance", Delay = TimeSpan.FromMilliseconds(1500), Times = 0 });
        string[] callers = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
        var (program, client, management) = Start(emulator,
            [
                "--MsiProxy:Forwarding:SharedAnswerDuration=00:00:00", // each request its own upstream call
                "--MsiProxy:Shutdown:ReadinessDelay=00:00:03",
                "--MsiProxy:Shutdown:DrainTimeout=00:01:30",           // a bound the drain stays far inside, on a loaded machine too
                "--MsiProxy:Resilience:RequestBudget=00:01:00",
                "--MsiProxy:Resilience:AttemptTimeout=00:00:30",
                .. callers.SelectMany((address, i) => new[] { $"--MsiProxy:Clients:{i}:Name=app{i}", $"--MsiProxy:Clients:{i}:Address={address}" }),
            ]);
        await using var _ = program;
        await WaitReadyAsync(program, management);

        // Load: two loops per caller, each request with its own id (forwarded to the upstream, so its log shows who got through).
        var outcomes = new ConcurrentQueue<Outcome>();
        using var stopSending = new CancellationTokenSource();
        var workers = callers.SelectMany(address => new[] { address, address })
            .Select(address => Task.Run(() => SendUntilStoppedAsync(address, client, outcomes, stopSending.Token))).ToList();
        await Eventually(() => InFlight(emulator).Count >= 5, Generous, "five requests in flight at the upstream");

        var inFlightAtSignal = InFlight(emulator);
        program.Terminate();

        // A load balancer's view: poll readiness on fresh connections; once it fails, stop sending new requests.
        var readiness = await WatchReadinessAsync(program, management);
        await stopSending.CancelAsync();
        var exit = await program.WaitForExitAsync(Generous);
        await Task.WhenAll(workers).WaitAsync(Generous);

        Assert.True(exit == 0, $"exit {exit}\nstdout: {program.StandardOutput}\nstderr: {program.StandardError}");
        Assert.True(readiness is { Status: HttpStatusCode.ServiceUnavailable }, $"readiness before exit: {readiness}");
        Assert.Contains("shutting down", readiness.Body, StringComparison.Ordinal);

        var all = outcomes.ToList();
        var failed = all.Where(o => !o.Complete && !o.Refused).ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of {all.Count} requests failed after being sent:\n" + string.Join("\n", failed.Take(10)));
        var answered = all.Where(o => o.Complete).Select(o => o.Id).ToHashSet(StringComparer.Ordinal);
        // What was in flight when the signal came finished after it, with a complete 200...
        Assert.All(inFlightAtSignal, id => Assert.Contains(id, answered));
        // ...and so did every request the upstream saw: none that the proxy accepted was cut off.
        var reachedUpstream = emulator.State.Requests.Select(RequestId).OfType<string>().ToList();
        Assert.All(reachedUpstream, id => Assert.Contains(id, answered));
        Assert.Contains("Stopping: /readyz answers 503", program.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task After_a_restart_a_client_registered_through_the_admin_api_still_gets_its_token()
    {
        var identity = UserAssigned(0);
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(1));
        string[] state = [$"--MsiProxy:StateFile={StatePath}", $"--MsiProxy:Management:ApiKey={Key}"];

        var (first, _, firstManagement) = Start(emulator, state);
        await using (first)
        {
            await WaitReadyAsync(first, firstManagement);
            using var admin = LoopbackCaller.Create("127.0.0.1", firstManagement);
            using var put = new HttpRequestMessage(HttpMethod.Put, "/admin/clients/orders-api")
            {
                Headers = { { "Authorization", "Bearer " + Key } },
                Content = JsonContent(new { address = "127.0.0.2", identities = new[] { $"client_id={identity.ClientId}" } }),
            };
            using var created = await admin.SendAsync(put);
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);

            first.Terminate();
            Assert.Equal(0, await first.WaitForExitAsync(Generous));
        }

        emulator.State.Reset();
        var (second, secondClient, _) = Start(emulator, state);
        await using (second)
        {
            // The very first answer the new process gives is the token: the registration was back before the listener opened.
            using var app = LoopbackCaller.Create("127.0.0.2", secondClient);
            var answer = await second.FirstAnswerAsync(() => TokenAsync(app, "https://vault.azure.net"), Generous);
            Assert.True(answer.Status == HttpStatusCode.OK, $"{answer.Status} {answer.Body}\nstdout: {second.StandardOutput}");
            var fetched = Assert.Single(TokenRequests(emulator), r => r.Query.Contains("vault", StringComparison.Ordinal));
            Assert.Contains($"client_id={identity.ClientId}", fetched.Query, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_corrupt_state_file_exits_2_naming_the_file_and_leaves_it_byte_for_byte()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var content = "{\"version\":1,\"clients\":[{\"name\":\"orders-api\",\"address\":\"127.0.0.2\"},"u8.ToArray(); // cut off mid-write by hand
        await File.WriteAllBytesAsync(StatePath, content);
        var modified = File.GetLastWriteTimeUtc(StatePath);

        var (program, _, _) = Start(emulator, [$"--MsiProxy:StateFile={StatePath}"]);
        await using var _ = program;
        var exit = await program.WaitForExitAsync(Generous);

        Assert.True(exit == 2, $"exit {exit}\nstdout: {program.StandardOutput}\nstderr: {program.StandardError}");
        Assert.Contains($"MsiProxy:StateFile = '{StatePath}' is not a state file: not valid JSON at line 1", program.StandardError, StringComparison.Ordinal);
        Assert.Contains($"mv '{StatePath}' '{StatePath}.bad'", program.StandardError, StringComparison.Ordinal);
        Assert.Equal(content, await File.ReadAllBytesAsync(StatePath));
        Assert.Equal(modified, File.GetLastWriteTimeUtc(StatePath));
        Assert.Equal([StatePath], Directory.GetFiles(_directory.FullName));
    }

    /// <summary>Issue 17: only the last journal line may be torn (a crash mid-append); a bad line before it is damage, and exit 2.</summary>
    [Fact]
    public async Task A_corrupt_line_in_the_middle_of_the_journal_exits_2_naming_it_and_leaves_both_files_byte_for_byte()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var journalPath = StatePath + ".journal";
        var snapshot = "{\"version\":2,\"clients\":[{\"name\":\"orders-api\",\"address\":\"127.0.0.2\"}]}"u8.ToArray();
        var journal = "{\"put\":{\"name\":\"a\",\"address\":\"127.0.0.3\"}}\n{\"put\":{\"name\":\"b\",\"addr\u0000\u0000\n{\"delete\":\"a\"}\n"u8.ToArray();
        await File.WriteAllBytesAsync(StatePath, snapshot);
        await File.WriteAllBytesAsync(journalPath, journal);
        var modified = (File.GetLastWriteTimeUtc(StatePath), File.GetLastWriteTimeUtc(journalPath));

        var (program, _, _) = Start(emulator, [$"--MsiProxy:StateFile={StatePath}"]);
        await using var _ = program;
        var exit = await program.WaitForExitAsync(Generous);

        Assert.True(exit == 2, $"exit {exit}\nstdout: {program.StandardOutput}\nstderr: {program.StandardError}");
        Assert.Contains($"MsiProxy:StateFile = '{StatePath}': its journal '{journalPath}' line 2 is not valid JSON", program.StandardError, StringComparison.Ordinal);
        Assert.Contains($"mv '{journalPath}' '{journalPath}.bad'", program.StandardError, StringComparison.Ordinal);
        Assert.Equal(snapshot, await File.ReadAllBytesAsync(StatePath));
        Assert.Equal(journal, await File.ReadAllBytesAsync(journalPath));
        Assert.Equal(modified, (File.GetLastWriteTimeUtc(StatePath), File.GetLastWriteTimeUtc(journalPath)));
        Assert.Equal([StatePath, journalPath], Directory.GetFiles(_directory.FullName).Order(StringComparer.Ordinal));
    }

    private sealed record Outcome(string Id, int? Status, bool Complete, string? Error)
    {
        public bool Refused => Error == "refused";
    }

    private sealed record Readiness(HttpStatusCode? Status, string Body);

    /// <summary>The program on fixed loopback ports, the emulator as its only upstream.</summary>
    private static (ChildProcess Program, Uri Client, Uri Management) Start(ImdsEmulatorServer emulator, IEnumerable<string> extra)
    {
        var upstream = emulator.BaseAddress.ToString().TrimEnd('/');
        UpstreamGuard.Check([upstream]);
        var client = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var management = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var program = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"), "--urls", client.ToString().TrimEnd('/'), $"--MsiProxy:Management:Urls={management.ToString().TrimEnd('/')}", $"--MsiProxy:Upstreams:0={upstream}",
                "--MsiProxy:Health:Timeout=00:00:10", .. extra],
            environment: new Dictionary<string, string?> { ["DOTNET_ENVIRONMENT"] = "Production" });
        return (program, client, management);
    }

    private static async Task WaitReadyAsync(ChildProcess program, Uri management)
    {
        using var http = LoopbackCaller.Create("127.0.0.1", management, TimeSpan.FromSeconds(10));
        await Eventually(async () => await ReadinessAsync(http) is { Status: HttpStatusCode.OK } || program.HasExited, Generous, "the program is ready");
        Assert.False(program.HasExited, $"the program exited\nstdout: {program.StandardOutput}\nstderr: {program.StandardError}");
    }

    /// <summary>Polls /readyz until it is not 200 or the listener is gone; the first such answer.</summary>
    private static async Task<Readiness> WatchReadinessAsync(ChildProcess program, Uri management)
    {
        using var http = LoopbackCaller.Create("127.0.0.1", management, TimeSpan.FromSeconds(10));
        var deadline = DateTime.UtcNow + Generous;
        while (DateTime.UtcNow < deadline)
        {
            var readiness = await ReadinessAsync(http);
            if (readiness.Status != HttpStatusCode.OK || program.HasExited)
            {
                return readiness;
            }

            await Task.Delay(20);
        }

        return new Readiness(HttpStatusCode.OK, "still ready");
    }

    private static async Task<Readiness> ReadinessAsync(HttpClient http)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/readyz");
        request.Headers.ConnectionClose = true; // a fresh connection each time, as a probe makes
        try
        {
            using var response = await http.SendAsync(request);
            return new Readiness(response.StatusCode, await response.Content.ReadAsStringAsync());
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return new Readiness(null, ex.GetType().Name + ": " + ex.Message);
        }
    }

    private static async Task SendUntilStoppedAsync(string source, Uri client, ConcurrentQueue<Outcome> outcomes, CancellationToken stop)
    {
        using var http = LoopbackCaller.Create(source, client, TimeSpan.FromMinutes(3));
        while (!stop.IsCancellationRequested)
        {
            var id = Guid.NewGuid().ToString();
            using var request = ImdsRequests.Get("/metadata/instance?api-version=2021-02-01");
            request.Headers.Add("x-ms-client-request-id", id);
            try
            {
                // Never cancelled by the test: a request once sent is waited for, however the proxy ends it.
                using var response = await http.SendAsync(request, CancellationToken.None);
                var body = await response.Content.ReadAsStringAsync(CancellationToken.None);
                outcomes.Enqueue(new Outcome(id, (int)response.StatusCode, response.StatusCode == HttpStatusCode.OK && IsInstanceDocument(body), null));
            }
            catch (HttpRequestException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                outcomes.Enqueue(new Outcome(id, null, false, "refused")); // the listener had closed: never accepted
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException)
            {
                outcomes.Enqueue(new Outcome(id, null, false, ex.GetType().Name + ": " + ex.Message));
            }
        }
    }

    private static bool IsInstanceDocument(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("compute", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Ids of the requests the upstream has received and not yet answered.</summary>
    private static List<string> InFlight(ImdsEmulatorServer emulator) =>
        [.. emulator.State.Requests.Where(r => !r.Completed).Select(RequestId).OfType<string>()];

    private static string? RequestId(RequestRecord record) =>
        record.Headers.FirstOrDefault(h => string.Equals(h.Key, "x-ms-client-request-id", StringComparison.OrdinalIgnoreCase)).Value;


    private static StringContent JsonContent(object body) =>
        new(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
