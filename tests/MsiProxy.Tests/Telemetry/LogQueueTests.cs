using System.Globalization;
using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// The request log and the audit go to the console through bounded queues off the request thread (issue 17): with
/// a queue far smaller than a burst, request lines are dropped and counted on /metrics, while every audit event
/// arrives (the audit queue blocks instead of dropping); one request after the other, every line arrives in order, and nothing queued is lost at a normal stop.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class LogQueueTests
{
    private const int Burst = 3000;

    [Fact]
    public async Task A_burst_larger_than_the_queue_drops_counted_request_lines_and_no_audit_event()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var program = await ProxyProgram.StartAsync(emulator.BaseAddress, new Dictionary<string, string?> { ["MsiProxy__Logging__QueueCapacity"] = "1" });
        var proxy = program.Process;
        using var management = program.CreateManagementClient();

        // Unregistered callers: each answered at once (403) with one request line and one audit event.
        using var stranger = program.CreateClient("127.0.0.3");
        var next = 0;
        var workers = Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            while (Interlocked.Increment(ref next) <= Burst)
            {
                using var refused = await stranger.SendAsync(Scenario.Token());
                Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            }
        })).ToArray();
        await Task.WhenAll(workers);

        // Every audit event of the burst, before the stop: the audit queue waited rather than dropped.
        await Eventually(() => Events(proxy, "Decision").Count >= Burst, what: "every audit event of the burst is on the console",
            details: () => $"{Events(proxy, "Decision").Count} of {Burst}");

        var metrics = PrometheusText.Parse(await management.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
        var dropped = metrics.Samples.Where(s => s.Name == "msiproxy_log_dropped_total").ToDictionary(s => s.Labels["kind"], s => s.Value);
        Assert.Equal(0, dropped["audit"]);
        Assert.True(dropped["logs"] > 0, "A queue of one and a burst of " + Burst.ToString(CultureInfo.InvariantCulture) + " requests dropped no request line");

        proxy.Terminate();
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var decisions = Events(proxy, "Decision");
        Assert.Equal(Burst, decisions.Count);
        Assert.All(decisions, d => Assert.Equal("denied:unregistered", d.GetProperty("Decision").GetString()));
        var completed = Events(proxy, "RequestCompleted").Count;
        Assert.True(completed < Burst, $"{completed} request lines of {Burst}, yet {dropped["logs"]} counted as dropped");
        Assert.True(completed + dropped["logs"] >= Burst, $"{completed} request lines + {dropped["logs"]} dropped < {Burst}");
    }

    [Fact]
    public async Task Every_request_line_and_audit_event_is_out_in_order_after_a_normal_stop()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var program = await ProxyProgram.StartAsync(emulator.BaseAddress);
        var proxy = program.Process;
        using var management = program.CreateManagementClient();

        // One after the other, each with its own resource: the order of completion is the order sent.
        using var app = program.CreateClient("127.0.0.2");
        const int count = 200;
        for (var i = 0; i < count; i++)
        {
            using var token = await app.SendAsync(Scenario.Token(resource: $"https://r{i}.example/"));
            Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        }

        // Stopped at once: whatever was still queued is written before the process exits.
        proxy.Terminate();
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var decisions = Events(proxy, "Decision");
        var completed = Events(proxy, "RequestCompleted");
        Assert.Equal(count, decisions.Count);
        Assert.Equal(count, completed.Count);
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"https://r{i}.example/"), decisions.Select(d => d.GetProperty("Resource").GetString()));
    }

    private static List<JsonElement> Events(ChildProcess proxy, string eventName) =>
        proxy.StandardOutputLines.Select(Parse).Where(j => j is { } e && e.TryGetProperty("EventId", out var id) && id.ValueKind == JsonValueKind.Object
            && id.TryGetProperty("Name", out var name) && name.GetString() == eventName).Select(j => j!.Value).ToList();

    private static JsonElement? Parse(string line)
    {
        try
        {
            using var document = JsonDocument.Parse(line);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
