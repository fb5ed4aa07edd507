using System.Diagnostics;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace MsiProxy.Upstreams;

/// <summary>
/// Active health probes the way IMDS needs them: YARP's default probe sends no <c>Metadata</c> header, which IMDS
/// answers with 400, so every probe would look like a failure. Ours sends the header and is marked so the retry
/// policy leaves it alone (a probe must report what it saw, not retry it).
/// </summary>
internal sealed class ImdsProbingRequestFactory : IProbingRequestFactory
{
    public static readonly HttpRequestOptionsKey<bool> IsProbe = new("msiproxy.probe");

    public HttpRequestMessage CreateRequest(ClusterModel cluster, DestinationModel destination)
    {
        var probe = cluster.Config.HealthCheck?.Active;
        var address = (destination.Config.Health ?? destination.Config.Address).TrimEnd('/');
        var request = new HttpRequestMessage(HttpMethod.Get, address + (probe?.Path ?? "/") + (probe?.Query ?? ""))
        {
            Version = System.Net.HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        request.Headers.Add("Metadata", "true");
        request.Options.Set(IsProbe, true);
        return request;
    }
}

/// <summary>
/// An upstream is healthy when it answers at all with a status below 500: a 400 or 403 still proves it is there
/// (another MsiProxy may refuse the probe's path), while a transport failure, a timeout or a 5xx does not. One answer
/// heals it; only <c>MsiProxy:Health:ActiveFailureThreshold</c> failed probes in a row take it out of service. A single
/// failure is not enough: the very first probe runs while the process is still cold (JIT, first connection) and can
/// exceed the probe timeout, and a whole interval of 503s after start-up would follow. A dead upstream is caught sooner
/// by passive health anyway.
/// </summary>
internal sealed class UpstreamProbePolicy(IDestinationHealthUpdater healthUpdater, UpstreamSetAccessor upstreams,
    Microsoft.Extensions.Options.IOptions<Configuration.MsiProxyOptions> options) : IActiveHealthCheckPolicy
{
    public const string PolicyName = "MsiProxyUpstream";

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<DestinationState, StrongBox<int>> _failures = [];

    public string Name => PolicyName;

    public void ProbingCompleted(ClusterState cluster, IReadOnlyList<DestinationProbingResult> probingResults)
    {
        var threshold = Math.Max(1, options.Value.Health.ActiveFailureThreshold); // Health:* is read at start-up (docs/development.md)
        var results = new List<NewActiveDestinationHealth>(probingResults.Count);
        foreach (var result in probingResults)
        {
            var failures = _failures.GetOrCreateValue(result.Destination);
            var healthy = result.Response is { } response && (int)response.StatusCode < 500;
            if (healthy)
            {
                upstreams.Value?.RecordProbeAnswer();
                failures.Value = 0;
            }
            else
            {
                failures.Value++;
            }

            var health = healthy ? DestinationHealth.Healthy
                : failures.Value >= threshold ? DestinationHealth.Unhealthy
                : result.Destination.Health.Active;
            results.Add(new NewActiveDestinationHealth(result.Destination, health));
        }

        healthUpdater.SetActive(cluster, results);
    }
}

/// <summary>
/// The HTTP client YARP's active health checks probe with: the same socket settings as the upstream client, and its
/// propagator, so probes to IMDS carry no trace headers either.
/// </summary>
internal sealed class ProbeHttpClientFactory(ILogger<ForwarderHttpClientFactory> logger) : ForwarderHttpClientFactory(logger)
{
    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        UpstreamHttp.Configure(handler);
        handler.ActivityHeadersPropagator = new ImdsAwarePropagator(DistributedContextPropagator.Current);
    }
}

/// <summary>Breaks the construction cycle UpstreamSet → YARP state → health policy → UpstreamSet.</summary>
internal sealed class UpstreamSetAccessor
{
    public UpstreamSet? Value { get; set; }
}
