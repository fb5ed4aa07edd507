using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Forwarding;

/// <summary>
/// Issue rule 5: an unreachable upstream is a 502, a silent one a 504 — JSON, in bounded time — and whatever the
/// upstream answered itself (4xx/5xx) reaches the client unchanged. The wall-clock bounds are safety nets against
/// a hang, not performance claims.
/// </summary>
public sealed class UpstreamFailureTests
{
    private const string Resource = "https://management.azure.com/";
    private const string InstancePath = "/metadata/instance/compute?api-version=2021-02-01";
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Settings for one request's failure. A first retry delay longer than the budget means one attempt: these tests
    /// are about how a failure is answered; retries, passive health and the circuit breaker have their own tests.
    /// </summary>
    private static Dictionary<string, string?> SingleAttempt(Uri upstream)
    {
        var settings = Settings(upstream);
        settings["MsiProxy:Resilience:RequestBudget"] = "00:00:01";
        settings["MsiProxy:Resilience:BaseDelay"] = "00:00:05";
        // Only the start-up probe: later ones would take the stopped upstream out of service, and then misses are 503 by design.
        settings["MsiProxy:Health:Interval"] = "00:05:00";
        return settings;
    }

    private static Dictionary<string, string?> Settings(Uri upstream)
    {
        var settings = CoreSettings.Proxy(upstream, ("app", "127.0.0.2", ["*"]));
        // These tests are about how one request's failure is answered; the circuit breaker and passive health (which turn
        // a sustained outage into a fast 503 for the requests after it) have their own tests and must not take the
        // upstream out of service on the retries of these.
        settings["MsiProxy:Resilience:BreakerMinimumThroughput"] = "1000";
        settings["MsiProxy:Health:PassiveFailureThreshold"] = "1000";
        return settings;
    }

    /// <summary>A loopback port nobody listens on: bound then released, so connecting is refused.</summary>
    private static Uri DeadUpstream()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return new Uri($"http://127.0.0.1:{port}");
    }

    /// <summary>A token request and a forwarded instance request both end with <paramref name="status"/> JSON within <paramref name="bound"/>.</summary>
    private static async Task BothPathsFailAsync(HttpClient client, string resource, HttpStatusCode status, string error, TimeSpan bound)
    {
        var (token, tokenTime) = await TimedAsync(client, ImdsRequests.Token(resource));
        var (instance, instanceTime) = await TimedAsync(client, ImdsRequests.Get(InstancePath));

        await CoreAssert.ImdsErrorAsync(token, status, error);
        await CoreAssert.ImdsErrorAsync(instance, status, error);
        Assert.True(tokenTime < bound, $"token took {tokenTime}");
        Assert.True(instanceTime < bound, $"instance took {instanceTime}");
    }

    private static async Task<(HttpResponseMessage Response, TimeSpan Elapsed)> TimedAsync(HttpClient client, HttpRequestMessage request)
    {
        var stopwatch = Stopwatch.StartNew();
        var response = await client.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return (response, stopwatch.Elapsed);
    }

    [Fact]
    public async Task Nothing_listening_upstream_is_a_502_json_in_bounded_time_on_both_paths()
    {
        await using var proxy = await ProxyHost.StartAsync(SingleAttempt(DeadUpstream()));
        using var client = proxy.CreateClient("127.0.0.2");

        await BothPathsFailAsync(client, Resource, HttpStatusCode.BadGateway, "bad_gateway", HangBound);
    }

    [Fact]
    public async Task An_upstream_that_stopped_is_a_502_json_in_bounded_time()
    {
        var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(SingleAttempt(emulator.BaseAddress));
        using var client = proxy.CreateClient("127.0.0.2");
        using (var before = await client.SendAsync(ImdsRequests.Token(Resource)))
        {
            await CoreAssert.OkAsync(before);
        }

        await emulator.DisposeAsync();
        await BothPathsFailAsync(client, "https://vault.azure.net", HttpStatusCode.BadGateway, "bad_gateway", HangBound);
    }

    [Fact]
    public async Task An_upstream_that_resets_every_connection_is_a_502_json()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Drop = true, Times = 0 });
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/instance", Drop = true, Times = 0 });
        await using var proxy = await ProxyHost.StartAsync(SingleAttempt(emulator.BaseAddress));
        using var client = proxy.CreateClient("127.0.0.2");

        await BothPathsFailAsync(client, Resource, HttpStatusCode.BadGateway, "bad_gateway", HangBound);
    }

    [Fact]
    public async Task A_stalled_upstream_is_a_504_json_within_the_budget_on_both_paths()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Stall = true, Times = 0 });
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/instance", Stall = true, Times = 0 });
        var settings = Settings(emulator.BaseAddress);
        settings["MsiProxy:Resilience:AttemptTimeout"] = "00:00:01";
        settings["MsiProxy:Resilience:RequestBudget"] = "00:00:03";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var client = proxy.CreateClient("127.0.0.2");

        // Budget 3 s (+ one attempt timeout of slack for scheduling): far below the 15 s hang bound.
        await BothPathsFailAsync(client, Resource, HttpStatusCode.GatewayTimeout, "gateway_timeout", TimeSpan.FromSeconds(6));
        Assert.Contains(emulator.State.Requests, r => r.Fault == "stall");
    }

    [Fact]
    public async Task Identity_not_found_from_the_upstream_reaches_the_client_byte_for_byte()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator.BaseAddress));
        const string query = "&client_id=11111111-2222-3333-4444-555555555555";

        using var direct = LoopbackCaller.Create("127.0.0.1", emulator.BaseAddress);
        using var expected = await direct.SendAsync(ImdsRequests.Token(Resource, query.TrimStart('&')));
        using var client = proxy.CreateClient("127.0.0.2");
        using var actual = await client.SendAsync(ImdsRequests.Token(Resource, query.TrimStart('&')));

        Assert.Equal(HttpStatusCode.BadRequest, expected.StatusCode);
        Assert.Equal(expected.StatusCode, actual.StatusCode);
        Assert.Equal(expected.Content.Headers.ContentType, actual.Content.Headers.ContentType);
        Assert.Equal(await expected.Content.ReadAsByteArrayAsync(), await actual.Content.ReadAsByteArrayAsync());
        Assert.Contains("Identity not found", await actual.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_persistent_upstream_500_with_its_own_body_reaches_the_client_unchanged_after_the_retries()
    {
        const string body = "{\"error\":\"server_error\",\"error_description\":\"custom failure 42\"}";
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 500, Body = body, Times = 0 });
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator.BaseAddress));
        using var client = proxy.CreateClient("127.0.0.2");

        var (response, elapsed) = await TimedAsync(client, ImdsRequests.Token(Resource));

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.True(CoreAssert.NonProbeRequests(emulator).Count > 1, "the 500 was not retried");
        Assert.True(elapsed < HangBound, $"took {elapsed}");
    }

    [Theory]
    [InlineData(400, "text/plain; charset=us-ascii", "plain words from upstream")]
    [InlineData(403, "application/problem+json", "{\"title\":\"nope\"}")]
    [InlineData(501, "text/html", "<h1>not implemented</h1>")]
    public async Task Upstream_error_answers_keep_status_body_and_content_type_on_both_paths(int status, string contentType, string body)
    {
        await using var upstream = await ScriptedUpstream.StartAsync(async context =>
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = contentType;
            await context.Response.WriteAsync(body);
        });
        await using var proxy = await ProxyHost.StartAsync(Settings(upstream.BaseAddress));
        using var client = proxy.CreateClient("127.0.0.2");

        foreach (var request in new[] { ImdsRequests.Token(Resource), ImdsRequests.Get(InstancePath) })
        {
            using (request)
            {
                var (response, _) = await TimedAsync(client, request);
                Assert.True(status == (int)response.StatusCode,
                    $"{request.RequestUri}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                Assert.Equal(contentType, response.Content.Headers.ContentType?.ToString());
                Assert.Equal(body, await response.Content.ReadAsStringAsync());
            }
        }
    }
}
