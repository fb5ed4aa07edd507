using System.Diagnostics;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Proxy;
using MsiProxy.Upstreams;

namespace MsiProxy.Tests.Telemetry;

/// <summary>The spans and metrics of one request of each kind, read from in-memory exporters on a real proxy.</summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class TraceAndMetricTests
{
    [Fact]
    public async Task A_cache_miss_with_two_retries_is_one_trace_with_a_fetch_and_three_attempt_spans()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 503, Times = 2 });
        var capture = new TelemetryCapture();
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])).WithFastRetries(),
            capture.Configure);

        using var app = proxy.CreateClient("127.0.0.2");
        using var response = await app.SendAsync(Scenario.Token());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var server = await capture.ServerSpanAsync("app", "miss");
        Assert.Equal("token", server.Tag(TraceSpans.Route));
        Assert.Equal(Scenario.ManagementResource, server.Tag(TraceSpans.Resource));
        Assert.Equal("system", server.Tag(TraceSpans.Identity), ignoreCase: true);
        var fetch = Assert.Single(capture.ChildrenOf(server, TraceSpans.UpstreamCall));
        Assert.Equal("3", fetch.Tag(TraceSpans.Attempts));
        Assert.Equal("200", fetch.Tag("http.response.status_code"));
        Assert.Equal("Closed", fetch.Tag(TraceSpans.CircuitState));
        var attempts = capture.ChildrenOf(fetch, TraceSpans.UpstreamAttempt).OrderBy(a => a.StartTimeUtc).ToList();
        Assert.Equal(["1", "2", "3"], attempts.Select(a => a.Tag("msiproxy.attempt")));
        Assert.Equal(["503", "503", "200"], attempts.Select(a => a.Tag("http.response.status_code")));
        Assert.All(attempts, a => Assert.Equal(emulator.BaseAddress.ToString().TrimEnd('/'), a.Tag(TraceSpans.Upstream)));
        var retries = fetch.Events.Where(e => e.Name == "retry").ToList();
        Assert.Equal(2, retries.Count);
        Assert.All(retries, e => Assert.Equal("503", e.Tags.First(t => t.Key == "msiproxy.retry.reason").Value));

        capture.Flush(proxy.Services);
        Assert.Equal(2, capture.Sum("msiproxy.upstream.retries", ("reason", "503")));
        Assert.Equal(1, capture.Sum("msiproxy.cache.misses"));
        Assert.Equal(0, capture.Sum("msiproxy.cache.hits"));
        Assert.Equal(2, capture.HistogramCount("msiproxy.upstream.request.duration", ("http.response.status_code", 503)));
        Assert.Equal(1, capture.HistogramCount("msiproxy.upstream.request.duration", ("http.response.status_code", 200)));
        Assert.Equal(1, capture.Sum("msiproxy.requests", ("msiproxy.route", "token"), ("msiproxy.outcome", "miss"), ("http.response.status_code", 200)));
    }

    [Fact]
    public async Task A_cache_hit_has_no_upstream_spans_and_counts_as_a_hit()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        await using var proxy = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])), capture.Configure);

        using var app = proxy.CreateClient("127.0.0.2");
        using (var first = await app.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using var second = await app.SendAsync(Scenario.Token());
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);

        var hit = await capture.ServerSpanAsync("app", "hit");
        Assert.DoesNotContain(capture.InTrace(hit), s => s.OperationName is TraceSpans.UpstreamCall or TraceSpans.UpstreamAttempt);
        Assert.Single(capture.ChildrenOf(await capture.ServerSpanAsync("app", "miss"), TraceSpans.UpstreamCall));

        capture.Flush(proxy.Services);
        Assert.Equal(1, capture.Sum("msiproxy.cache.hits"));
        Assert.Equal(1, capture.Sum("msiproxy.cache.misses"));
        Assert.Equal(1, capture.Sum("msiproxy.requests", ("msiproxy.outcome", "hit"), ("http.response.status_code", 200)));
        Assert.Equal(1, capture.HistogramCount("msiproxy.upstream.request.duration"));
        Assert.Equal(1L, capture.Points("msiproxy.cache.entries").Single().GetGaugeLastValueLong());
        var ttl = capture.Points("msiproxy.token.time_to_expiry").Single().GetGaugeLastValueDouble();
        Assert.InRange(ttl, TimeSpan.FromHours(23).TotalSeconds, TimeSpan.FromHours(24).TotalSeconds);
    }

    [Fact]
    public async Task Denied_callers_are_tagged_with_the_reason_and_never_reach_the_cache_or_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        var allowed = Guid.NewGuid().ToString();
        await using var proxy = await ProxyHost.StartAsync(
            ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [$"client_id={allowed}"])), capture.Configure);

        using var stranger = proxy.CreateClient("127.0.0.3");
        using (var refused = await stranger.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var app = proxy.CreateClient("127.0.0.2");
        using (var wrongIdentity = await app.SendAsync(Scenario.Token(clientId: Guid.NewGuid().ToString())))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrongIdentity.StatusCode);
        }

        var unregistered = await capture.SpanAsync(s => s.Kind == ActivityKind.Server && s.Tag(TraceSpans.DeniedReason) == "unregistered", "unregistered denial");
        Assert.Equal("denied", unregistered.Tag(TraceSpans.Outcome));
        Assert.Null(unregistered.Tag(TraceSpans.Client));
        var identity = await capture.ServerSpanAsync("app", "denied");
        Assert.Equal("identity", identity.Tag(TraceSpans.DeniedReason));
        Assert.DoesNotContain(capture.Spans, s => s.OperationName is TraceSpans.UpstreamCall or TraceSpans.UpstreamAttempt);
        Assert.Equal(0, emulator.State.Counters.TokenRequests);

        capture.Flush(proxy.Services);
        Assert.Equal(1, capture.Sum("msiproxy.denials", ("reason", "unregistered")));
        Assert.Equal(1, capture.Sum("msiproxy.denials", ("reason", "identity")));
        Assert.Equal(1, capture.Sum("msiproxy.requests", ("msiproxy.outcome", "denied"), ("http.response.status_code", 403)));
        Assert.Equal(1, capture.Sum("msiproxy.requests", ("msiproxy.outcome", "denied"), ("http.response.status_code", 400)));
        Assert.Equal(0, capture.Sum("msiproxy.cache.misses"));
    }

    [Fact]
    public async Task An_open_circuit_shows_on_the_fetch_span_the_gauge_and_Pollys_events()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 500, Times = 100 });
        var capture = new TelemetryCapture();
        var settings = ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", [])).WithFastRetries();
        settings["MsiProxy:Resilience:BreakerMinimumThroughput"] = "2";
        settings["MsiProxy:Resilience:BreakerDuration"] = "00:01:00";
        await using var proxy = await ProxyHost.StartAsync(settings, capture.Configure);

        using var app = proxy.CreateClient("127.0.0.2");
        using (var opening = await app.SendAsync(Scenario.Token()))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, opening.StatusCode);
        }

        using (var whileOpen = await app.SendAsync(Scenario.Token("https://vault.azure.net")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, whileOpen.StatusCode);
            Assert.NotNull(whileOpen.Headers.RetryAfter);
        }

        await capture.SpanAsync(s => s.Kind == ActivityKind.Server && s.Tag(TraceSpans.Resource) == "https://vault.azure.net", "server span of the request while open");
        var fetches = capture.Spans.Where(s => s.OperationName == TraceSpans.UpstreamCall).OrderBy(s => s.StartTimeUtc).ToList();
        Assert.Equal(2, fetches.Count);
        Assert.All(fetches, f =>
        {
            Assert.Equal("circuit_open", f.Tag(TraceSpans.ProxyError));
            Assert.Equal("Open", f.Tag(TraceSpans.CircuitState));
            Assert.Equal(ActivityStatusCode.Error, f.Status);
        });
        // The breaker counts health probes too, so how many 500s open it varies; every attempt saw one, though.
        var opened = capture.ChildrenOf(fetches[0], TraceSpans.UpstreamAttempt);
        Assert.NotEmpty(opened);
        Assert.All(opened, a => Assert.Equal("500", a.Tag("http.response.status_code")));
        Assert.Empty(capture.ChildrenOf(fetches[1], TraceSpans.UpstreamAttempt));
        var server = await capture.SpanAsync(s => s.Kind == ActivityKind.Server && s.Tag(TraceSpans.Resource) == "https://vault.azure.net", "server span of the request while open");
        Assert.Equal("upstream_error", server.Tag(TraceSpans.Outcome));
        Assert.Equal(fetches[1].ParentSpanId, server.SpanId);

        capture.Flush(proxy.Services);
        Assert.Equal(1L, capture.Points("msiproxy.upstream.circuit_state").Single().GetGaugeLastValueLong());
        Assert.Equal(2, capture.Sum("msiproxy.requests", ("msiproxy.outcome", "upstream_error"), ("http.response.status_code", 503)));
        Assert.True(capture.Sum("resilience.polly.strategy.events", ("event.name", "OnCircuitOpened")) >= 1,
            "Polly's own meter should count the circuit opening; metrics seen: " + string.Join(", ", capture.MetricNames));
    }

    [Fact]
    public async Task A_two_tier_request_is_one_trace_across_both_proxies()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        // The msiserviceclient tier: its client is the first proxy, which connects from 127.0.0.1.
        await using var tier2 = await ProxyHost.StartAsync(ProxyHost.Settings(emulator.BaseAddress, ("tier1", "127.0.0.1", [])));
        await using var tier1 = await ProxyHost.StartAsync(ProxyHost.Settings(tier2.ClientAddress, ("app", "127.0.0.2", [])), capture.Configure);

        // On a busy machine tier 2's first health probe can time out; this test is about traces, not failover.
        await Eventually(() => tier2.Get<MsiProxy.Upstreams.UpstreamSet>().Describe().All(u => u.Available), what: "tier 2's upstream is available");

        using var app = tier1.CreateClient("127.0.0.2");
        using var response = await app.SendAsync(Scenario.Token());
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");

        // Every TracerProvider in the process sees every span, so tier 2's spans reach this capture too.
        var front = await capture.ServerSpanAsync("app", "miss");
        var back = await capture.ServerSpanAsync("tier1", "miss");
        Assert.Equal(front.TraceId, back.TraceId);
        var frontAttempts = capture.ChildrenOf(Assert.Single(capture.ChildrenOf(front, TraceSpans.UpstreamCall)), TraceSpans.UpstreamAttempt);
        Assert.True(frontAttempts.Count == 1, "attempts: " + string.Join("; ", frontAttempts.Select(a => string.Join(",", a.TagObjects.Select(t => t.Key + "=" + t.Value))))
            + " tier2 log: " + string.Join(" | ", tier2.Logs.Events.Select(e => e.Message)));
        var httpCall = Assert.Single(capture.Spans, s => s.SpanId == back.ParentSpanId);
        Assert.Equal(frontAttempts[0].SpanId, httpCall.ParentSpanId);
        Assert.Equal(ActivityKind.Client, httpCall.Kind);

        // Tier 2 continues the same trace to its own upstream (a loopback emulator here, so headers are kept).
        var tokenCall = Assert.Single(emulator.State.Requests, r => r.Path.Contains("oauth2/token", StringComparison.Ordinal));
        Assert.Contains(front.TraceId.ToHexString(), tokenCall.Headers["traceparent"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_background_refresh_is_its_own_trace_linked_to_the_request_that_set_it_off()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var capture = new TelemetryCapture();
        var settings = ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", []));
        settings["MsiProxy:Cache:RefreshAfter"] = "0.000001"; // due for refresh a fraction of a second after the fetch
        await using var proxy = await ProxyHost.StartAsync(settings, capture.Configure);

        using var app = proxy.CreateClient("127.0.0.2");
        (await app.SendAsync(Scenario.Token())).Dispose();
        await Task.Delay(200);
        (await app.SendAsync(Scenario.Token())).Dispose();

        var trigger = await capture.ServerSpanAsync("app", "refresh");
        var refresh = await Eventually(() => capture.Spans.FirstOrDefault(s => s.OperationName == TraceSpans.BackgroundCall), s => s is not null,
            what: "the background refresh's span");
        Assert.NotNull(refresh);
        Assert.Equal(default, refresh.ParentSpanId);
        Assert.NotEqual(trigger.TraceId, refresh.TraceId);
        Assert.Contains(refresh.Links, l => l.Context.SpanId == trigger.SpanId && l.Context.TraceId == trigger.TraceId);
        Assert.Single(capture.ChildrenOf(refresh, TraceSpans.UpstreamAttempt));
        Assert.Equal("200", refresh.Tag("http.response.status_code"));
    }

    [Fact]
    public void Trace_context_goes_to_an_msiserviceclient_but_never_to_imds()
    {
        using var source = new ActivitySource("MsiProxy.Tests.Propagation");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == source.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(listener);
        using var activity = source.StartActivity("call")!;
        var propagator = new ImdsAwarePropagator(DistributedContextPropagator.CreateW3CPropagator());

        // Nothing is sent: the propagator only writes headers on a request object.
        using var toServiceClient = new HttpRequestMessage(HttpMethod.Get, "http://127.0.0.1:1/metadata/identity/oauth2/token");
        propagator.Inject(activity, toServiceClient, (carrier, name, value) => ((HttpRequestMessage)carrier!).Headers.TryAddWithoutValidation(name, value));
        Assert.Contains(activity.TraceId.ToHexString(), Assert.Single(toServiceClient.Headers.GetValues("traceparent")), StringComparison.Ordinal);

        using var toImds = new HttpRequestMessage(HttpMethod.Get, "http://169.254.169.254/metadata/identity/oauth2/token");
        toImds.Headers.TryAddWithoutValidation("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        propagator.Inject(activity, toImds, (carrier, name, value) => ((HttpRequestMessage)carrier!).Headers.TryAddWithoutValidation(name, value));
        Assert.False(toImds.Headers.Contains("traceparent"));
        Assert.False(toImds.Headers.Contains("tracestate"));
    }
}
