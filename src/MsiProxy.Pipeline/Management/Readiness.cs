using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

/// <summary>
/// Ready while an upstream is available (by the health checks) and one answered recently; without a recent answer, asks
/// the first available one right now. With no upstream available the proxy can only serve cached tokens: not ready.
/// </summary>
internal sealed class UpstreamReadiness(UpstreamSet upstreams, IOptions<MsiProxyOptions> options, TimeProvider time,
    IHttpClientFactory httpClients) : IHealthCheck
{
    public const string Name = "upstream";
    public const string ProbeClientName = "msiproxy-readiness";

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken)
    {
        var health = options.Value.Health;
        var available = upstreams.Pick();
        if (available is null)
        {
            var states = string.Join(", ", upstreams.Describe().Select(u => $"{u.Address} active={u.Active} passive={u.Passive}"));
            return HealthCheckResult.Unhealthy($"no upstream is available ({states})");
        }

        if (upstreams.LastAnswer is { } last && time.GetUtcNow() - last < health.ReadyWindow)
        {
            return HealthCheckResult.Healthy($"{available.Address} is available; an upstream answered at {last:O}");
        }

        var candidate = available.Address;
        using var request = new HttpRequestMessage(HttpMethod.Get, candidate.TrimEnd('/') + health.ProbePath);
        request.Headers.Add("Metadata", "true");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(health.Timeout);
        try
        {
            using var response = await httpClients.CreateClient(ProbeClientName).SendAsync(request, timeout.Token);
            if ((int)response.StatusCode < 500)
            {
                upstreams.RecordProbeAnswer();
                return HealthCheckResult.Healthy($"{candidate} answered {(int)response.StatusCode}");
            }

            return HealthCheckResult.Unhealthy($"{candidate} answered {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"{candidate} did not answer ({ex.GetType().Name})");
        }
    }

    public static void AddProbeClient(IServiceCollection services) =>
        services.AddHttpClient(ProbeClientName).ConfigurePrimaryHttpMessageHandler(UpstreamHttp.Create);
}
