using System.Diagnostics.Metrics;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Upstreams;

namespace MsiProxy.Telemetry;

/// <summary>Observable gauges over live state: cache size, soonest token expiry, circuit, queue, registrations.</summary>
internal sealed class StateGauges(MsiProxyTelemetry telemetry, TokenCache cache, ClientRegistry registry, UpstreamResilience resilience,
    UpstreamSet upstreams, TimeProvider time) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var meter = telemetry.Meter;
        meter.CreateObservableGauge("msiproxy.cache.entries", () => cache.Count, "{entry}", "Tokens in the cache.");
        meter.CreateObservableGauge("msiproxy.token.time_to_expiry", () => cache.EarliestExpiry() is { } e
            ? [new Measurement<double>((e - time.GetUtcNow()).TotalSeconds)] : Array.Empty<Measurement<double>>(),
            "s", "Time until the soonest cached token expires.");
        meter.CreateObservableGauge("msiproxy.upstream.circuit_state", () => resilience.CircuitStates.Select(c =>
            new Measurement<int>((int)c.Value, new KeyValuePair<string, object?>("msiproxy.upstream", c.Key))), "{state}",
            "Upstream circuit breaker: 0 closed, 1 open, 2 half-open, 3 isolated.");
        meter.CreateObservableGauge("msiproxy.upstream.queue_length", () => resilience.QueueLength, "{request}",
            "Requests waiting for an upstream slot.");
        meter.CreateObservableGauge("msiproxy.upstream.available", () => upstreams.Describe().Select(u =>
            new Measurement<int>(u.Available ? 1 : 0, new KeyValuePair<string, object?>("msiproxy.upstream", u.Address))),
            "{upstream}", "1 when an upstream is available to take traffic.");
        meter.CreateObservableGauge("msiproxy.clients.registered", () => registry.All.GroupBy(r => r.Source).Select(g =>
            new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("msiproxy.source", g.Key))),
            "{client}", "Registered clients, by source.");
        meter.CreateObservableGauge("msiproxy.clients.ready", () => registry.All.Count(r => r.Ready), "{client}",
            "Registered clients that are wired and may call.");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
