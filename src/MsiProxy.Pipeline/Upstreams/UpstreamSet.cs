using System.Globalization;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace MsiProxy.Upstreams;

/// <summary>
/// The ordered upstreams (IMDS, or msiserviceclient instances), kept as a YARP cluster in its in-memory configuration
/// so they can change at runtime without failing requests in flight. YARP's active health checks and our passive
/// failure count decide which are available; <see cref="UpstreamClient"/> sends each attempt to the first available one
/// in configured order. YARP forwards nothing itself (docs/architecture.md).
/// </summary>
public sealed class UpstreamSet
{
    public const string ClusterId = "upstreams";

    private readonly Lock _gate = new();
    private readonly InMemoryConfigProvider _config;
    private readonly IProxyStateLookup _state;
    private readonly IDestinationHealthUpdater _health;
    private readonly MsiProxyOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<UpstreamSet> _logger;
    private readonly Dictionary<string, int> _consecutiveFailures = new(StringComparer.Ordinal);
    private IReadOnlyList<string> _upstreams;
    private long _lastAnswerTicks;

    public UpstreamSet(InMemoryConfigProvider config, IProxyStateLookup state, IDestinationHealthUpdater health,
        IOptions<MsiProxyOptions> options, TimeProvider time, ILogger<UpstreamSet> logger)
    {
        _config = config;
        _state = state;
        _health = health;
        _options = options.Value; // the list changes through Set (admin API, monitor); Health:* is read at start-up
        _time = time;
        _logger = logger;
        _upstreams = _options.EffectiveUpstreams;
    }

    /// <summary>Raised after the upstream list changed.</summary>
    public event Action<IReadOnlyList<string>>? Changed;

    public IReadOnlyList<string> Current => _upstreams;

    /// <summary>When an upstream last answered with anything at all (a probe or a request).</summary>
    public DateTimeOffset? LastAnswer => Interlocked.Read(ref _lastAnswerTicks) is var ticks and > 0
        ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>Replaces the upstream list. Invalid lists are refused whole; the previous list stays.</summary>
    public void Set(IReadOnlyList<string> upstreams)
    {
        var errors = Validate(upstreams).ToList();
        if (errors.Count > 0)
        {
            throw new ArgumentException(string.Join("; ", errors), nameof(upstreams));
        }

        lock (_gate)
        {
            _upstreams = [.. upstreams.Select(u => u.TrimEnd('/'))];
            _consecutiveFailures.Clear();
            _config.Update([], [BuildCluster(_upstreams, _options)]);
        }

        _logger.LogInformation("Upstreams set to {Upstreams}", _upstreams);
        Changed?.Invoke(_upstreams);
    }

    public static IEnumerable<string> Validate(IReadOnlyList<string> upstreams)
    {
        if (upstreams.Count == 0)
        {
            yield return "at least one upstream is required";
        }

        for (var i = 0; i < upstreams.Count; i++)
        {
            if (!Uri.TryCreate(upstreams[i], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
                || !string.IsNullOrEmpty(uri.Query) || uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.UserInfo))
            {
                yield return $"MsiProxy:Upstreams:{i} = '{upstreams[i]}' is not an http(s) base URL without path, query or credentials";
            }
        }
    }

    /// <summary>The first available upstream in configured order, or null when none is available.</summary>
    public SelectedUpstream? Pick()
    {
        if (!_state.TryGetCluster(ClusterId, out var cluster))
        {
            return null;
        }

        DestinationState? best = null;
        foreach (var destination in cluster.DestinationsState.AvailableDestinations)
        {
            if (best is null || string.CompareOrdinal(destination.DestinationId, best.DestinationId) < 0)
            {
                best = destination;
            }
        }

        return best is null ? null : new SelectedUpstream(cluster, best, best.Model.Config.Address.TrimEnd('/'));
    }

    /// <summary>Health of every upstream, in configured order (for the admin API and /readyz).</summary>
    public IReadOnlyList<UpstreamHealth> Describe()
    {
        var upstreams = _upstreams;
        _state.TryGetCluster(ClusterId, out var cluster);
        var result = new List<UpstreamHealth>(upstreams.Count);
        for (var i = 0; i < upstreams.Count; i++)
        {
            DestinationState? destination = null;
            cluster?.Destinations.TryGetValue(DestinationId(i), out destination);
            var available = cluster?.DestinationsState.AvailableDestinations.Contains(destination!) ?? false;
            result.Add(new UpstreamHealth(upstreams[i], i,
                destination?.Health.Active.ToString() ?? "Unknown", destination?.Health.Passive.ToString() ?? "Unknown",
                destination is not null && available));
        }

        return result;
    }

    public void ReportAnswer(SelectedUpstream upstream)
    {
        Interlocked.Exchange(ref _lastAnswerTicks, _time.GetUtcNow().UtcTicks);
        lock (_gate)
        {
            _consecutiveFailures.Remove(upstream.Address);
        }
    }

    /// <summary>
    /// A transport failure or timeout (not an HTTP error status: the upstream answered). After a few in a row the
    /// upstream is skipped for a while, so the next one takes over without waiting for the active probe.
    /// </summary>
    public void ReportFailure(SelectedUpstream upstream)
    {
        int failures;
        lock (_gate)
        {
            failures = _consecutiveFailures[upstream.Address] = _consecutiveFailures.GetValueOrDefault(upstream.Address) + 1;
        }

        var health = _options.Health;
        if (failures >= health.PassiveFailureThreshold)
        {
            _logger.LogWarning("Upstream {Upstream} failed {Failures} times in a row; skipping it for {Period}",
                upstream.Address, failures, health.PassiveReactivation);
            _health.SetPassive(upstream.Cluster, upstream.Destination, DestinationHealth.Unhealthy, health.PassiveReactivation);
        }
    }

    /// <summary>Skips <paramref name="address"/> for <paramref name="period"/> (its circuit breaker opened).</summary>
    public void TakeOutOfService(string address, TimeSpan period)
    {
        if (!_state.TryGetCluster(ClusterId, out var cluster))
        {
            return;
        }

        foreach (var destination in cluster.Destinations.Values)
        {
            if (destination.Model.Config.Address.TrimEnd('/') == address.TrimEnd('/'))
            {
                _logger.LogWarning("Upstream {Upstream} is failing (circuit open); skipping it for {Period}", address, period);
                _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
            }
        }
    }

    internal void RecordProbeAnswer() => Interlocked.Exchange(ref _lastAnswerTicks, _time.GetUtcNow().UtcTicks);

    internal static string DestinationId(int index) => "u" + index.ToString("D3", CultureInfo.InvariantCulture);

    internal static ClusterConfig BuildCluster(IReadOnlyList<string> upstreams, MsiProxyOptions options) => new()
    {
        ClusterId = ClusterId,
        LoadBalancingPolicy = LoadBalancingPolicies.FirstAlphabetical,
        Destinations = upstreams
            .Select((address, index) => (address, index))
            .ToDictionary(x => DestinationId(x.index), x => new DestinationConfig { Address = x.address.TrimEnd('/') + "/" }),
        HealthCheck = new HealthCheckConfig
        {
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyAndUnknown,
            Active = new ActiveHealthCheckConfig
            {
                Enabled = true,
                Interval = options.Health.Interval,
                Timeout = options.Health.Timeout,
                Policy = UpstreamProbePolicy.PolicyName,
                Path = options.Health.ProbePath,
            },
            // YARP ignores a destination's passive health when choosing available destinations unless passive checks
            // are enabled: without this, ReportFailure marked an upstream unhealthy and Pick() kept choosing it.
            // The health state is set by ReportFailure; YARP's own passive middleware is not in the pipeline, so the
            // named policy (which must exist) never runs.
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate,
                ReactivationPeriod = options.Health.PassiveReactivation,
            },
        },
    };
}

public sealed record SelectedUpstream(ClusterState Cluster, DestinationState Destination, string Address);

public sealed record UpstreamHealth(string Address, int Order, string Active, string Passive, bool Available);
