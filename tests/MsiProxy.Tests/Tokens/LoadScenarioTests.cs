using System.Collections.Concurrent;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Telemetry;
using Xunit.Abstractions;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Tokens;

/// <summary>A node's worth of containers asking at once: counts, not times.</summary>
[Collection(CapturedLogsRunAlone.Name)]
public sealed class LoadScenarioTests(ITestOutputHelper output)
{
    private const int Addresses = 20;
    private const int Clients = 200;
    private const int RequestsPerClient = 15;
    private static readonly string[] Resources = [Arm, "https://vault.azure.net"];

    [Fact]
    public async Task Two_hundred_clients_over_ten_keys_make_one_upstream_call_per_key_and_see_no_throttling()
    {
        var emulatorOptions = WithUserAssigned(5); // limits on: 20/s and 5 concurrent, as IMDS
        Assert.True(emulatorOptions.Limits.Enabled);
        await using var emulator = await ImdsEmulatorServer.StartAsync(emulatorOptions);
        var settings = Settings(emulator,
            [.. Enumerable.Range(0, Addresses).Select(i => ($"app{i}", $"127.0.0.{10 + i}", new[] { "*" }))]);
        await using var proxy = await ProxyHost.StartAsync(settings);

        var keys = (from identity in Enumerable.Range(0, 5) from resource in Resources select (UserAssigned(identity).ClientId, resource)).ToArray();
        Assert.Equal(10, keys.Length);
        var callers = Enumerable.Range(0, Addresses).Select(i => proxy.CreateClient($"127.0.0.{10 + i}")).ToArray();
        var statuses = new ConcurrentBag<HttpStatusCode>();
        var answers = new ConcurrentBag<Answer>();
        using var start = new ManualResetEventSlim();

        var clients = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            start.Wait();
            for (var r = 0; r < RequestsPerClient; r++)
            {
                var (clientId, resource) = keys[(c + r) % keys.Length];
                var answer = await TokenAsync(callers[c % Addresses], resource, $"client_id={clientId}");
                statuses.Add(answer.Status);
                answers.Add(answer);
            }
        })).ToArray();
        start.Set();
        await Task.WhenAll(clients);
        foreach (var caller in callers)
        {
            caller.Dispose();
        }

        var upstreamCalls = TokenRequests(emulator).Count;
        // The request log line is written after the response went out.
        await Eventually(() => proxy.Logs.Events.Count(e => e.Category == RequestRecorder.RequestCategory) >= Clients * RequestsPerClient);
        var outcomes = proxy.Logs.Events.Where(e => e.Category == RequestRecorder.RequestCategory).Select(e => e.Value("Outcome")).ToList();
        var hits = outcomes.Count(o => o is "hit" or "refresh");
        output.WriteLine($"requests={statuses.Count} upstream token calls={upstreamCalls} hits={hits} " +
            $"hit ratio={(double)hits / outcomes.Count:P2} emulator max concurrency={emulator.State.Counters.MaxConcurrency}");

        Assert.Equal(Clients * RequestsPerClient, statuses.Count);
        Assert.True(statuses.All(s => s == HttpStatusCode.OK), string.Join(",", answers.Where(a => a.Status != HttpStatusCode.OK).Take(1).Select(a => a.Body)));
        Assert.Equal(keys.Length, upstreamCalls);
        Assert.Equal(0, emulator.State.Counters.Throttled);
        Assert.InRange(emulator.State.Counters.MaxConcurrency, 1, 5);
        Assert.Equal(Clients * RequestsPerClient, outcomes.Count);
        Assert.DoesNotContain("throttled", outcomes);
    }
}
