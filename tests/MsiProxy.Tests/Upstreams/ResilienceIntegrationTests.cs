using System.Diagnostics;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Upstreams;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Upstreams;

/// <summary>The proxy against the emulator with IMDS's limits on (20/s, 5 concurrent) and scripted faults.</summary>
public sealed class ResilienceIntegrationTests
{
    private static Dictionary<string, string?> Settings(ImdsEmulatorServer emulator, params (string Key, string Value)[] extra)
    {
        var settings = Tokens.ProxyCalls.Settings(emulator, ("app", "127.0.0.2", ["*"]));
        settings["MsiProxy:Resilience:BaseDelay"] = "00:00:00.050";
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        return settings;
    }

    private static FaultRule TokenFault(int status, int times = 1, TimeSpan? retryAfter = null) =>
        new() { PathPrefix = "/metadata/identity", Status = status, Times = times, RetryAfter = retryAfter };

    [Fact]
    public async Task Two_500s_then_a_token_reach_the_client_as_one_200_after_three_upstream_calls()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(TokenFault(500, times: 2));
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator));
        using var app = proxy.CreateClient("127.0.0.2");

        var answer = await TokenAsync(app);

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        Assert.Equal([500, 500, 200], TokenRequests(emulator).Select(r => r.Status ?? 0));
    }

    [Fact]
    public async Task A_429_with_retry_after_is_waited_out_before_the_next_attempt()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(TokenFault(429, retryAfter: TimeSpan.FromSeconds(2)));
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator));
        using var app = proxy.CreateClient("127.0.0.2");

        var answer = await TokenAsync(app);

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        var calls = TokenRequests(emulator);
        Assert.Equal([429, 200], calls.Select(r => r.Status ?? 0));
        Assert.True(calls[1].ArrivedAt - calls[0].ArrivedAt >= TimeSpan.FromSeconds(1.95),
            $"second attempt came {(calls[1].ArrivedAt - calls[0].ArrivedAt).TotalMilliseconds} ms after the 429");
    }

    [Fact]
    public async Task A_long_retry_after_is_capped()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(TokenFault(503, retryAfter: TimeSpan.FromSeconds(60)));
        // Attempts get all the time a loaded machine may need: an attempt timed out would be a third call.
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("MsiProxy:Resilience:MaxRetryAfter", "00:00:01"),
            ("MsiProxy:Resilience:AttemptTimeout", "00:00:30"), ("MsiProxy:Resilience:RequestBudget", "00:00:40")));
        using var app = proxy.CreateClient("127.0.0.2");

        var answer = await TokenAsync(app);

        Assert.Equal(HttpStatusCode.OK, answer.Status);
        var calls = TokenRequests(emulator);
        Assert.True(calls.Count == 2, string.Join("; ", calls.Select(c => $"+{(c.ArrivedAt - calls[0].ArrivedAt).TotalMilliseconds:0} ms {c.Status?.ToString() ?? "no answer"}")));
        Assert.InRange(calls[1].ArrivedAt - calls[0].ArrivedAt, TimeSpan.FromSeconds(0.95), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Identity_not_found_is_passed_through_after_exactly_one_upstream_call()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator));
        using var app = proxy.CreateClient("127.0.0.2");

        var answer = await TokenAsync(app, extraQuery: "client_id=99999999-9999-4999-8999-999999999999");

        Assert.Equal(HttpStatusCode.BadRequest, answer.Status);
        Assert.Equal("Identity not found", answer.Json.GetProperty("error_description").GetString());
        Assert.Single(TokenRequests(emulator));

        // Not cached either: the next request asks again.
        await TokenAsync(app, extraQuery: "client_id=99999999-9999-4999-8999-999999999999");
        Assert.Equal(2, TokenRequests(emulator).Count);
    }

    [Fact]
    public async Task Upstream_down_answers_misses_with_a_fast_503_while_cached_tokens_are_still_served()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator,
            ("MsiProxy:Resilience:RequestBudget", "00:00:06"),
            ("MsiProxy:Health:PassiveFailureThreshold", "2"),
            ("MsiProxy:Health:PassiveReactivation", "00:01:00")));
        using var app = proxy.CreateClient("127.0.0.2");
        var cached = await TokenAsync(app);
        Assert.Equal(HttpStatusCode.OK, cached.Status);

        await emulator.StopAsync();
        // The request that finds the upstream refusing connections reports just that (502); its failures take the upstream
        // out of service, so the requests after it are answered at once with 503.
        var first = await TokenAsync(app, "https://vault.azure.net");
        Assert.Equal(HttpStatusCode.BadGateway, first.Status);

        var stopwatch = Stopwatch.StartNew();
        var fast = await TokenAsync(app, "https://storage.azure.com/");
        stopwatch.Stop();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, fast.Status);
        Assert.Equal("service_unavailable", fast.Json.GetProperty("error").GetString());
        Assert.NotNull(fast.RetryAfter);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"503 took {stopwatch.ElapsedMilliseconds} ms; the budget is 6 s");
        Assert.Contains(proxy.Get<UpstreamSet>().Describe(), u => u.Passive == "Unhealthy" && !u.Available);

        var hit = await TokenAsync(app);
        Assert.Equal(HttpStatusCode.OK, hit.Status);
        Assert.Equal(cached.AccessToken, hit.AccessToken);
    }

    [Fact]
    public async Task An_open_circuit_answers_misses_at_once_without_calling_upstream_and_hits_still_work()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator,
            ("MsiProxy:Resilience:BreakerMinimumThroughput", "3"),
            ("MsiProxy:Resilience:BreakerFailureRatio", "0.5"),
            ("MsiProxy:Resilience:BreakerDuration", "00:00:30"),
            ("MsiProxy:Resilience:RequestBudget", "00:00:02"),
            ("MsiProxy:Health:Interval", "00:01:00")));
        using var app = proxy.CreateClient("127.0.0.2");
        var cached = await TokenAsync(app);

        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Resource = "https://vault.azure.net", Status = 500, Times = 0 });
        var failing = await TokenAsync(app, "https://vault.azure.net");
        Assert.True(failing.Status is HttpStatusCode.InternalServerError or HttpStatusCode.ServiceUnavailable, failing.Status.ToString());
        Assert.True(Polly.CircuitBreaker.CircuitState.Open == proxy.Get<UpstreamResilience>().CircuitState, $"{failing.Status} {failing.Body} calls={string.Join(",", TokenRequests(emulator).Select(r => r.Status))}");

        var before = TokenRequests(emulator).Count;
        var refused = await TokenAsync(app, "https://storage.azure.com/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.Status);
        Assert.Equal("30", refused.RetryAfter);
        Assert.Equal(before, TokenRequests(emulator).Count);

        Assert.Equal(cached.AccessToken, (await TokenAsync(app)).AccessToken);
    }
}
