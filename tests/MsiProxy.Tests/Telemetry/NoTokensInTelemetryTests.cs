using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// The promise operators rely on when they ship telemetry to shared back-ends: no token ever appears in a span,
/// attribute, event, metric, log record or the Prometheus scrape — checked against every token the emulator issued
/// during a scenario with hits, misses, retries, refreshes, bypasses, throttling, denials and forwarded requests.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class NoTokensInTelemetryTests
{
    [Fact]
    public async Task No_issued_token_appears_in_any_exported_telemetry()
    {
        var userAssigned = new UserAssignedIdentity(Guid.NewGuid().ToString(), Guid.NewGuid().ToString(),
            "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app2");
        await using var emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { UserAssigned = [userAssigned] });
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 503, Times = 2 });
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Resource = "https://storage.azure.com/", Status = 429,
            RetryAfter = TimeSpan.FromSeconds(1), Times = 1 });
        var capture = new TelemetryCapture();
        var settings = ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", []), ("app2", "127.0.0.4", [$"client_id={userAssigned.ClientId}"]))
            .WithFastRetries();
        settings["MsiProxy:Cache:RefreshAfter"] = "0.000001"; // every later hit also refreshes in the background
        settings["MsiProxy:Resilience:MaxConcurrency"] = "1";      // so a burst from app2 fills its queue of one:
        settings["MsiProxy:Resilience:MaxQueuePerClient"] = "1";  // one running, one waiting, the rest refused
        await using var proxy = await ProxyHost.StartAsync(settings, capture.Configure);

        using var app = proxy.CreateClient("127.0.0.2");
        using var app2 = proxy.CreateClient("127.0.0.4");
        using var stranger = proxy.CreateClient("127.0.0.3");
        var statuses = new List<HttpStatusCode>();
        async Task Send(HttpClient client, HttpRequestMessage request)
        {
            using (request)
            using (var response = await client.SendAsync(request))
            {
                lock (statuses)
                {
                    statuses.Add(response.StatusCode);
                }
            }
        }

        await Send(app, Scenario.Token());                                  // miss after two 503s
        await Send(app, Scenario.Token());                                  // hit (+ refresh)
        await Task.Delay(100);
        await Send(app, Scenario.Token());                                  // hit (+ refresh)
        await Send(app, Scenario.Token("https://storage.azure.com/"));      // miss after a 429 with Retry-After
        await Send(app, new HttpRequestMessage(HttpMethod.Get,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net&bypass_cache=true") { Headers = { { "Metadata", "true" } } });
        await Send(app, Scenario.Instance());                               // forwarded
        await Send(app, Scenario.Instance());
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Delay = TimeSpan.FromMilliseconds(300), Times = 5 });
        await Task.WhenAll(Enumerable.Range(0, 5).Select(i =>
            Send(app2, Scenario.Token($"https://resource{i}.example/", userAssigned.ClientId))));   // misses, and throttled at once

        await Send(app2, Scenario.Token(clientId: Guid.NewGuid().ToString()));   // identity denied
        await Send(stranger, Scenario.Token());                                  // unregistered

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.Forbidden));
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.BadRequest));
        await Eventually(() => capture.Spans.Count(s => s.Kind == System.Diagnostics.ActivityKind.Server && s.GetTagItem(TraceSpans.Outcome) is not null)
            >= statuses.Count, what: "every request's server span is exported");
        await Eventually(() => capture.Spans.Any(s => s.OperationName == TraceSpans.BackgroundCall), what: "a background refresh ran");
        capture.Flush(proxy.Services);
        using var scraper = proxy.CreateManagementClient();
        var scrape = await scraper.GetStringAsync("/metrics");

        var tokens = emulator.State.IssuedTokens;
        Assert.True(tokens.Count >= 4, $"the scenario should have fetched several tokens, got {tokens.Count}");
        var exported = capture.AllText();
        var logged = proxy.Logs.AllText();
        // The scan must be looking at real telemetry: spans, metrics and logs of this scenario are all there.
        Assert.Contains(TraceSpans.UpstreamAttempt, exported, StringComparison.Ordinal);
        Assert.Contains("msiproxy.cache.hits", exported, StringComparison.Ordinal);
        Assert.Contains(MsiProxyTelemetry.AuditCategory + " Decision ", exported, StringComparison.Ordinal);
        Assert.Contains("app2", logged, StringComparison.Ordinal);
        Assert.Contains("msiproxy_requests_total", scrape, StringComparison.Ordinal);
        foreach (var token in tokens)
        {
            // The whole token, and its signature alone (the part that makes a leaked prefix usable or not).
            var signature = token[(token.LastIndexOf('.') + 1)..];
            foreach (var (where, text) in new[] { ("exported telemetry", exported), ("logs", logged), ("/metrics", scrape) })
            {
                Assert.False(text.Contains(token, StringComparison.Ordinal), $"A token appears in the {where}");
                Assert.False(signature.Length >= 16 && text.Contains(signature, StringComparison.Ordinal), $"A token signature appears in the {where}");
            }
        }
    }
    /// <summary>
    /// Issue 16: the App Service identity header — the secret, and its SHA-256 too (it is what an attacker would need to
    /// test guesses offline) — never appears in telemetry, logs, /metrics or the admin API's output, whether it was
    /// right, wrong, configured or registered through the admin API.
    /// </summary>
    [Fact]
    public async Task No_identity_header_or_its_digest_appears_in_telemetry_logs_metrics_or_admin_output()
    {
        var secret = Clients.AppServiceProtocolTests.NewSecret();
        var adminSecret = Clients.AppServiceProtocolTests.NewSecret();
        var wrong = Clients.AppServiceProtocolTests.NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        var settings = Clients.AppServiceProtocolTests.WithProof(
            ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", []), ("pods", "127.0.0.0/29", [])), 0, "address+secret", secret);
        Clients.AppServiceProtocolTests.WithProof(settings, 1, "secret", secret + "-pods");
        settings["MsiProxy:Management:ApiKey"] = "admin-key-0123456789";
        await using var proxy = await ProxyHost.StartAsync(settings, capture.Configure);
        using var admin = new Management.AdminClient(proxy, "admin-key-0123456789");
        var put = await admin.PutAsync("/admin/clients/late", new
        {
            address = "127.0.0.9", identities = new[] { "system" }, proof = "address+secret",
            identityHeaderSha256 = Clients.AppServiceProtocolTests.Sha256(adminSecret),
        });
        Assert.Equal(HttpStatusCode.Created, put.Status);

        var query = "/msi/token?api-version=2019-08-01&resource=" + Uri.EscapeDataString(Scenario.ManagementResource);
        var statuses = new List<int>();
        foreach (var (from, header) in new[] { ("127.0.0.2", secret), ("127.0.0.2", wrong), ("127.0.0.6", secret + "-pods"), ("127.0.0.6", wrong),
                     ("127.0.0.9", adminSecret), ("127.0.0.9", secret) })
        {
            statuses.Add((await Testing.Net.RawHttp.GetAsync(proxy.ClientAddress, query, [("X-IDENTITY-HEADER", header)], from: from)).Status);
        }

        Assert.Equal([200, 401, 200, 403, 200, 401], statuses);
        await Eventually(() => capture.Spans.Count(s => s.Kind == System.Diagnostics.ActivityKind.Server && s.GetTagItem(TraceSpans.Outcome) is not null)
            >= statuses.Count, what: "every request's server span is exported");
        capture.Flush(proxy.Services);
        using var scraper = proxy.CreateManagementClient();
        var scrape = await scraper.GetStringAsync("/metrics");
        var adminOutput = (await admin.GetAsync("/admin/clients")).Body + (await admin.GetAsync("/admin/clients/late")).Body + put.Body;
        var exported = capture.AllText();
        var logged = proxy.Logs.AllText();
        Assert.Contains("appservice-token", exported, StringComparison.Ordinal);
        Assert.Contains("identity_header_wrong", logged, StringComparison.Ordinal);
        Assert.Contains("address+secret", adminOutput, StringComparison.Ordinal);
        foreach (var value in new[] { secret, secret + "-pods", adminSecret, wrong })
        {
            var digest = Clients.AppServiceProtocolTests.Sha256(value);
            foreach (var (where, text) in new[] { ("exported telemetry", exported), ("logs", logged), ("/metrics", scrape), ("admin output", adminOutput) })
            {
                Assert.False(text.Contains(value, StringComparison.OrdinalIgnoreCase), $"An identity header appears in the {where}");
                Assert.False(text.Contains(digest, StringComparison.OrdinalIgnoreCase), $"An identity header's digest appears in the {where}");
            }
        }
    }
}
