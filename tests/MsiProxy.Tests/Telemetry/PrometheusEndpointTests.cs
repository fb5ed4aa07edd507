using System.Net;
using System.Text.RegularExpressions;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Telemetry;

/// <summary><c>/metrics</c> as Prometheus scrapes it: over HTTP, on the management listener only, with the documented series.</summary>
[Collection(TelemetryTestGroup.Name)]
public sealed partial class PrometheusEndpointTests
{
    [Fact]
    public async Task After_a_scenario_the_documented_series_have_the_expected_values()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 503, Times = 1 });
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])).WithFastRetries());

        using var app = proxy.CreateClient("127.0.0.2");
        for (var i = 0; i < 3; i++)
        {
            using var token = await app.SendAsync(Scenario.Token());
            Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        }

        using (var instance = await app.SendAsync(Scenario.Instance()))
        {
            Assert.Equal(HttpStatusCode.OK, instance.StatusCode);
        }

        using var stranger = proxy.CreateClient("127.0.0.3");
        using (var refused = await stranger.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var scraper = proxy.CreateManagementClient();
        var upstream = emulator.BaseAddress.ToString().TrimEnd('/');
        PrometheusText metrics = null!;
        // The request counter is written as the response completes, a moment after the caller has its answer.
        await Eventually(() =>
        {
            metrics = PrometheusText.Parse(scraper.GetStringAsync("/metrics").GetAwaiter().GetResult());
            return metrics.Value("msiproxy_requests_total") == 5;
        }, what: "all five requests are counted");

        Assert.Equal(1, metrics.Value("msiproxy_requests_total", ("msiproxy_route", "token"), ("msiproxy_outcome", "miss"), ("http_response_status_code", "200")));
        Assert.Equal(2, metrics.Value("msiproxy_requests_total", ("msiproxy_route", "token"), ("msiproxy_outcome", "hit"), ("http_response_status_code", "200")));
        Assert.Equal(1, metrics.Value("msiproxy_requests_total", ("msiproxy_route", "instance"), ("msiproxy_outcome", "forwarded"), ("http_response_status_code", "200")));
        Assert.Equal(1, metrics.Value("msiproxy_requests_total", ("msiproxy_outcome", "denied"), ("http_response_status_code", "403")));
        // The refused request is on the token route too: the endpoint is known before the caller is looked up.
        Assert.Equal(4, metrics.Value("msiproxy_request_duration_seconds_count", ("msiproxy_route", "token")));
        Assert.Equal(1, metrics.Value("msiproxy_denials_total", ("reason", "unregistered")));
        Assert.Equal(2, metrics.Value("msiproxy_cache_hits_total"));
        Assert.Equal(1, metrics.Value("msiproxy_cache_misses_total"));
        Assert.Equal(1, metrics.Value("msiproxy_cache_entries"));
        Assert.Equal(1, metrics.Value("msiproxy_upstream_retries_total", ("reason", "503")));
        Assert.Equal(1, metrics.Value("msiproxy_upstream_request_duration_seconds_count", ("msiproxy_upstream", upstream), ("http_response_status_code", "503")));
        // The token fetch and the forwarded instance request: one upstream client measures both.
        Assert.Equal(2, metrics.Value("msiproxy_upstream_request_duration_seconds_count", ("msiproxy_upstream", upstream), ("http_response_status_code", "200")));
        Assert.Equal(0, metrics.Value("msiproxy_upstream_active_requests", ("msiproxy_upstream", upstream)));
        Assert.Equal(0, metrics.Value("msiproxy_upstream_queue_length"));
        Assert.Equal(0, metrics.Value("msiproxy_upstream_circuit_state"));
        Assert.Equal(1, metrics.Value("msiproxy_upstream_available", ("msiproxy_upstream", upstream)));
        Assert.Equal(1, metrics.Value("msiproxy_clients_registered"));
        Assert.Equal(1, metrics.Value("msiproxy_clients_ready"));
        Assert.InRange(metrics.Value("msiproxy_token_time_to_expiry_seconds") ?? -1, TimeSpan.FromHours(23).TotalSeconds, TimeSpan.FromHours(24).TotalSeconds);
        // The built-in meters are there too.
        Assert.NotNull(metrics.Value("http_server_request_duration_seconds_count"));
        Assert.NotNull(metrics.Value("resilience_polly_strategy_events_total"));
        Assert.NotNull(metrics.Value("kestrel_active_connections"));
        // …but not Kestrel's memory pool, which records on every buffer and is dropped by the service defaults.
        Assert.DoesNotContain(metrics.Names, name => name.StartsWith("aspnetcore_memory_pool_", StringComparison.Ordinal));

        // Every MsiProxy series on the endpoint is documented for operators.
        var documented = DocumentedSeries().Matches(await File.ReadAllTextAsync(RepositoryPaths.Combine("docs", "observability.md")))
            .Select(m => m.Value).ToHashSet();
        var undocumented = metrics.Names.Where(n => n.StartsWith("msiproxy_", StringComparison.Ordinal))
            .Select(n => Regex.Replace(n, "_(bucket|count|sum)$", "")).Where(n => !documented.Contains(n)).Distinct().ToList();
        Assert.True(undocumented.Count == 0, "Not in docs/observability.md: " + string.Join(", ", undocumented));
    }

    [Fact]
    public async Task Metrics_are_not_served_on_the_client_listener()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])));

        using var app = proxy.CreateClient("127.0.0.2");
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics") { Headers = { { "Metadata", "true" } } };
        using var response = await app.SendAsync(request);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.DoesNotContain("msiproxy_", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using var scraper = proxy.CreateManagementClient();
        using var scrape = await scraper.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
        Assert.Contains("msiproxy_clients_registered", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [GeneratedRegex("msiproxy_[a-z_]+")]
    private static partial Regex DocumentedSeries();
}
