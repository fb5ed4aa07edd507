using System.Collections.Concurrent;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Management;
using Xunit.Abstractions;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Upstreams;

/// <summary>Two emulators as ordered upstreams: the first dies mid-run, comes back, and the list changes under load.</summary>
public sealed class FailoverTests(ITestOutputHelper output)
{
    private const string Key = "admin-key-0123456789";
    private static readonly string[] Cached = ["https://cached-1/", "https://cached-2/", "https://cached-3/"];

    private static Dictionary<string, string?> TwoUpstreams(ImdsEmulatorServer first, ImdsEmulatorServer second)
    {
        var settings = Settings(first, ("app", "127.0.0.2", ["*"]));
        settings["MsiProxy:Upstreams:1"] = second.BaseAddress.ToString().TrimEnd('/');
        settings["MsiProxy:Health:Interval"] = "00:00:01";
        settings["MsiProxy:Health:PassiveReactivation"] = "00:00:02";
        settings["MsiProxy:Resilience:BaseDelay"] = "00:00:00.050";
        settings["MsiProxy:ClientRateLimit:RequestsPerSecond"] = "0"; // this test is about upstreams, not fairness
        settings["MsiProxy:Management:ApiKey"] = Key;
        return settings;
    }

    /// <summary>Hits on the cached keys and a steady trickle of fresh misses until cancelled.</summary>
    private sealed class Load(HttpClient client)
    {
        private int _misses;
        public ConcurrentBag<(bool Miss, HttpStatusCode Status)> Results { get; } = [];

        public Task RunAsync(CancellationToken stop) => Task.WhenAll(
            Task.Run(async () =>
            {
                for (var i = 0; !stop.IsCancellationRequested; i++)
                {
                    Results.Add((false, (await TokenAsync(client, Cached[i % Cached.Length])).Status));
                }
            }),
            Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    Results.Add((true, (await TokenAsync(client, $"https://miss-{Interlocked.Increment(ref _misses)}/")).Status));
                    await Task.Delay(100);
                }
            }));

        public int Failures(bool miss) => Results.Count(r => r.Miss == miss && r.Status != HttpStatusCode.OK);
    }

    [Fact]
    public async Task When_the_first_upstream_dies_traffic_moves_to_the_second_and_returns_when_it_is_back()
    {
        var first = await ImdsEmulatorServer.StartAsync();
        var firstAddress = first.BaseAddress.ToString();
        await using var second = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(TwoUpstreams(first, second));
        using var app = proxy.CreateClient("127.0.0.2");
        foreach (var resource in Cached)
        {
            Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, resource)).Status);
        }

        Assert.Equal(Cached.Length, TokenRequests(first).Count);
        Assert.Empty(TokenRequests(second));

        var load = new Load(app);
        using var stop = new CancellationTokenSource();
        var running = load.RunAsync(stop.Token);
        await Eventually(() => load.Results.Count(r => r.Miss) >= 3, what: "load started on the first upstream");

        var stopping = DateTimeOffset.UtcNow;
        await first.DisposeAsync(); // Kestrel drains for up to its shutdown timeout; the upstream is down once this returns
        var stoppedAt = DateTimeOffset.UtcNow;
        output.WriteLine($"first upstream took {(stoppedAt - stopping).TotalMilliseconds:0} ms to stop");
        await Eventually(() => TokenRequests(second).Count >= 3, TimeSpan.FromSeconds(10), "misses reached the second upstream");
        var movedAfter = TokenRequests(second)[0].ArrivedAt - stoppedAt;
        // Within the health-check interval (1 s): passive health skips the dead upstream after a few refused connections.
        output.WriteLine($"first token request on the second upstream {movedAfter.TotalMilliseconds:0} ms after the first stopped");
        Assert.True(movedAfter < TimeSpan.FromSeconds(2), $"failover took {movedAfter}");

        await using var restarted = await ImdsEmulatorServer.StartAsync(new EmulatorOptions(), firstAddress);
        await Eventually(() => TokenRequests(restarted).Count >= 3, TimeSpan.FromSeconds(15), "traffic returned to the first upstream");
        var secondCount = TokenRequests(second).Count;
        await Eventually(() => TokenRequests(restarted).Count >= 6, TimeSpan.FromSeconds(5));
        Assert.Equal(secondCount, TokenRequests(second).Count);

        await stop.CancelAsync();
        await running;
        output.WriteLine($"requests={load.Results.Count} miss failures={load.Failures(true)} hit failures={load.Failures(false)}");
        Assert.Equal(0, load.Failures(miss: false));
        Assert.InRange(load.Failures(miss: true), 0, 2);
        Assert.True(load.Results.Count(r => !r.Miss) > 50);
    }

    [Fact]
    public async Task Upstreams_replaced_through_the_admin_api_under_load_fail_no_request()
    {
        await using var first = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        var settings = Settings(first, ("app", "127.0.0.2", ["*"]));
        settings["MsiProxy:ClientRateLimit:RequestsPerSecond"] = "0";
        settings["MsiProxy:Management:ApiKey"] = Key;
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var admin = new AdminClient(proxy, Key);
        using var app = proxy.CreateClient("127.0.0.2");
        foreach (var resource in Cached)
        {
            Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, resource)).Status);
        }

        var load = new Load(app);
        using var stop = new CancellationTokenSource();
        var running = load.RunAsync(stop.Token);
        await Eventually(() => load.Results.Count(r => r.Miss) >= 3);

        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { second.BaseAddress.ToString() } })).Status);
        await Eventually(() => TokenRequests(second).Count >= 3, what: "misses follow the new list");
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsync("/admin/upstreams", new { upstreams = new[] { first.BaseAddress.ToString(), second.BaseAddress.ToString() } })).Status);
        var firstCount = TokenRequests(first).Count;
        await Eventually(() => TokenRequests(first).Count >= firstCount + 3, what: "misses back on the first");

        await stop.CancelAsync();
        await running;
        output.WriteLine($"requests={load.Results.Count}");
        Assert.DoesNotContain(load.Results, r => r.Status != HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_failing_first_upstream_opens_only_its_own_breaker_and_misses_fail_over_to_the_second()
    {
        await using var first = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        var settings = TwoUpstreams(first, second);
        settings["MsiProxy:Health:Interval"] = "00:01:00"; // no probe heals the first upstream during the test
        settings["MsiProxy:Health:PassiveReactivation"] = "00:01:00";
        settings["MsiProxy:Health:PassiveFailureThreshold"] = "100"; // only the breaker can take the first upstream out
        settings["MsiProxy:Resilience:BreakerMinimumThroughput"] = "3";
        settings["MsiProxy:Resilience:BreakerFailureRatio"] = "0.5";
        settings["MsiProxy:Resilience:BreakerDuration"] = "00:01:00";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var app = proxy.CreateClient("127.0.0.2");
        first.State.Faults.Enqueue(new MsiProxy.ImdsEmulator.FaultRule { PathPrefix = "/metadata/identity", Status = 500, Times = 0 });

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            statuses.Add((await TokenAsync(app, $"https://failover-{i}/")).Status);
        }

        output.WriteLine(string.Join(", ", statuses));
        var resilience = proxy.Get<MsiProxy.Upstreams.UpstreamResilience>();
        Assert.Equal(Polly.CircuitBreaker.CircuitState.Open, resilience.CircuitStateOf(first.BaseAddress.ToString().TrimEnd('/')));
        Assert.Equal(Polly.CircuitBreaker.CircuitState.Closed, resilience.CircuitStateOf(second.BaseAddress.ToString().TrimEnd('/')));
        // Once the first upstream's breaker opened, every miss was served by the second: no 5xx at the end of the run.
        Assert.Equal(HttpStatusCode.OK, statuses[^1]);
        Assert.Equal(HttpStatusCode.OK, statuses[^2]);
        Assert.True(second.State.Counters.TokensIssued >= 2, $"the second upstream issued {second.State.Counters.TokensIssued} tokens");
    }
}
