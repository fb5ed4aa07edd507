using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace MsiProxy.Telemetry;

/// <summary>
/// MsiProxy's own ActivitySource and Meter. Names follow OpenTelemetry conventions; label values are bounded:
/// outcomes, reasons and registration sources are fixed sets, upstreams come from configuration or the admin API. Never
/// a client or pod name (Kubernetes brings a new one with every pod: a series per pod would grow without bound — they
/// are in the request log, the audit events and the spans), nor raw resources, client IPs or tokens.
/// </summary>
public sealed class MsiProxyTelemetry
{
    public const string Name = "MsiProxy";

    /// <summary>The log category of audit events (one per decision): never dropped on the way to the console.</summary>
    public const string AuditCategory = "MsiProxy.Audit";

    public static readonly ActivitySource ActivitySource = new(Name);

    public MsiProxyTelemetry(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(Name);
        Requests = meter.CreateCounter<long>("msiproxy.requests", "{request}", "Client requests by route, outcome and status.");
        RequestDuration = meter.CreateHistogram<double>("msiproxy.request.duration", "s", "Time to answer a client request.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        Denials = meter.CreateCounter<long>("msiproxy.denials", "{request}", "Requests refused before anything was read from the cache or sent upstream, by reason.");
        CacheHits = meter.CreateCounter<long>("msiproxy.cache.hits", "{request}", "Token requests answered from the cache.");
        CacheMisses = meter.CreateCounter<long>("msiproxy.cache.misses", "{request}", "Token requests that had to wait for an upstream fetch.");
        CacheRefreshes = meter.CreateCounter<long>("msiproxy.cache.refreshes", "{refresh}", "Background refreshes, by result.");
        CacheEvictions = meter.CreateCounter<long>("msiproxy.cache.evictions", "{entry}", "Cache entries removed, by reason.");
        UpstreamDuration = meter.CreateHistogram<double>("msiproxy.upstream.request.duration", "s", "Upstream attempts, by upstream and status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        UpstreamInFlight = meter.CreateUpDownCounter<long>("msiproxy.upstream.active_requests", "{request}", "Upstream requests in flight.");
        UpstreamRetries = meter.CreateCounter<long>("msiproxy.upstream.retries", "{retry}", "Upstream retries, by the status or error that caused them.");
        ClientThrottled = meter.CreateCounter<long>("msiproxy.client.throttled", "{request}", "Requests refused 429 because the client's own upstream queue was full or its turn would come after its budget, by reason (the client is in the request log and audit, never a label).");
        MonitorEvents = meter.CreateCounter<long>("msiproxy.monitor.events", "{event}", "Container monitor events handled, by action.");
        MonitorErrors = meter.CreateCounter<long>("msiproxy.monitor.errors", "{error}", "Container monitor failures, by action.");
        Meter = meter;
    }

    public Meter Meter { get; }
    public Counter<long> Requests { get; }
    public Histogram<double> RequestDuration { get; }
    public Counter<long> Denials { get; }
    public Counter<long> CacheHits { get; }
    public Counter<long> CacheMisses { get; }
    public Counter<long> CacheRefreshes { get; }
    public Counter<long> CacheEvictions { get; }
    public Histogram<double> UpstreamDuration { get; }
    public UpDownCounter<long> UpstreamInFlight { get; }
    public Counter<long> UpstreamRetries { get; }
    public Counter<long> ClientThrottled { get; }
    public Counter<long> MonitorEvents { get; }
    public Counter<long> MonitorErrors { get; }
}
