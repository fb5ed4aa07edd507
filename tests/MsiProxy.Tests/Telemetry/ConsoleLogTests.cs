using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// The console as an operator sees it, from the real MsiProxy.dll in its own process: one compact-JSON line per
/// event (Serilog writes through to OpenTelemetry, so no second console provider repeats it), with the trace and span
/// ids of the request on every line logged during one.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class ConsoleLogTests
{
    [Fact]
    public async Task Console_lines_are_compact_json_once_each_with_trace_and_span_ids()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var program = await ProxyProgram.StartAsync(emulator.BaseAddress);
        var proxy = program.Process;
        using var management = program.CreateManagementClient();

        using var app = program.CreateClient("127.0.0.2");
        using (var token = await app.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.OK, token.StatusCode);
        }

        using var stranger = program.CreateClient("127.0.0.3");
        using (var refused = await stranger.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        // A marker request after the two: once its lines are out, a duplicate line of the first two would be too.
        using (var marker = await stranger.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.Forbidden, marker.StatusCode);
        }

        await Eventually(() => Events(proxy, "RequestCompleted").Count >= 3 && Events(proxy, "Decision").Count >= 3, what: "all three requests are logged");

        var lines = proxy.StandardOutputLines.Where(l => l.Length > 0).ToList();
        var events = lines.Select(l => (Line: l, Json: Parse(l))).ToList();
        Assert.All(events, e => Assert.True(e.Json is not null && e.Json.Value.TryGetProperty("@t", out _), "Not a compact JSON event: " + e.Line));

        var completed = Events(proxy, "RequestCompleted");
        Assert.Equal(3, completed.Count);
        var decisions = Events(proxy, "Decision");
        Assert.Equal(3, decisions.Count);
        foreach (var e in completed.Concat(decisions))
        {
            Assert.Matches("^[0-9a-f]{32}$", e.GetProperty("@tr").GetString());
            Assert.Matches("^[0-9a-f]{16}$", e.GetProperty("@sp").GetString());
        }

        // Each request's audit line and request line belong to its own trace.
        var tokenLine = completed.Single(e => e.GetProperty("StatusCode").GetInt32() == 200);
        var tokenDecision = decisions.Single(e => e.GetProperty("Decision").GetString() == "fetched");
        Assert.Equal(tokenLine.GetProperty("@tr").GetString(), tokenDecision.GetProperty("@tr").GetString());
        Assert.Equal(2, decisions.Count(e => e.GetProperty("Decision").GetString() == "denied:unregistered"));
        Assert.Equal(3, completed.Select(e => e.GetProperty("@tr").GetString()).Distinct().Count());
        Assert.Equal(lines.Count, lines.Distinct().Count());
        foreach (var issued in emulator.State.IssuedTokens)
        {
            Assert.DoesNotContain(lines, l => l.Contains(issued, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Levels_and_properties_from_configuration_shape_the_console()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var program = await ProxyProgram.StartAsync(emulator.BaseAddress, new Dictionary<string, string?>
        {
            ["Serilog__MinimumLevel__Override__MsiProxy.Requests"] = "Warning",
            ["Serilog__Properties__Node"] = "node-7",
        });
        var proxy = program.Process;

        using var stranger = program.CreateClient("127.0.0.3");
        for (var i = 0; i < 3; i++)
        {
            using var refused = await stranger.SendAsync(Scenario.Token());
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        // A clean stop writes out everything queued: whatever the request log had taken is on the console by then.
        proxy.Terminate();
        Assert.Equal(0, await proxy.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        var decisions = Events(proxy, "Decision");
        Assert.Equal(3, decisions.Count);
        Assert.All(decisions, e => Assert.Equal("node-7", e.GetProperty("Node").GetString()));
        Assert.Empty(Events(proxy, "RequestCompleted"));
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
