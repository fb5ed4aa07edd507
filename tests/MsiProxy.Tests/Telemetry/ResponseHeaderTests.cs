using System.Diagnostics;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Telemetry;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// Every answer carries an x-ms-request-id as IMDS's do: the upstream's when it answered, else the request's trace id,
/// so the id an SDK prints in its error message leads to the proxy's spans and log lines; and the client's own
/// x-ms-client-request-id comes back when it asks for it.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class ResponseHeaderTests
{
    [Fact]
    public async Task A_cache_hit_and_a_refusal_carry_their_trace_id_and_a_forwarded_answer_carries_the_upstreams()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])), capture.Configure);
        using var app = proxy.CreateClient("127.0.0.2");
        using var stranger = proxy.CreateClient("127.0.0.3");

        using (await app.SendAsync(Scenario.Token()))
        {
        }

        using var hit = await app.SendAsync(Scenario.Token());
        using var refused = await stranger.SendAsync(Scenario.Token());
        using var forwarded = await app.SendAsync(Scenario.Instance());

        var hitSpan = await capture.ServerSpanAsync("app", "hit");
        Assert.Equal(Guid.ParseExact(hitSpan.TraceId.ToHexString(), "N"), Guid.Parse(Single(hit, "x-ms-request-id")));
        var refusedSpan = await capture.SpanAsync(s => s.Kind == ActivityKind.Server && (s.GetTagItem(TraceSpans.DeniedReason) as string) == "unregistered",
            "the refusal's server span");
        Assert.Equal(Guid.ParseExact(refusedSpan.TraceId.ToHexString(), "N"), Guid.Parse(Single(refused, "x-ms-request-id")));
        // The emulator, like IMDS, gives each answer an id of its own; the proxy passes it on rather than its trace id.
        var forwardedSpan = await capture.ServerSpanAsync("app", "forwarded");
        Assert.NotEqual(Guid.ParseExact(forwardedSpan.TraceId.ToHexString(), "N"), Guid.Parse(Single(forwarded, "x-ms-request-id")));
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("false", false)]
    [InlineData(null, false)]
    public async Task The_clients_request_id_comes_back_only_when_it_asks(string? returnIt, bool expected)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var app = proxy.CreateClient("127.0.0.2");
        using var request = Scenario.Token();
        request.Headers.TryAddWithoutValidation("x-ms-client-request-id", "0c7b5e52-7a1f-4d0a-9a62-3b5d2f1e8c47");
        if (returnIt is not null)
        {
            request.Headers.TryAddWithoutValidation("x-ms-return-client-request-id", returnIt);
        }

        using var response = await app.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Headers.TryGetValues("x-ms-client-request-id", out var values)
            && values.Single() == "0c7b5e52-7a1f-4d0a-9a62-3b5d2f1e8c47");
    }

    private static string Single(HttpResponseMessage response, string header) => Assert.Single(response.Headers.GetValues(header));
}
