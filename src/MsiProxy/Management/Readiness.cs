using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Forwarding;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

public sealed record ReadinessResult(string Name, bool Ready, string Detail);

/// <summary>One thing <c>/readyz</c> waits for. The upstream check is built in; the container monitor adds its own.</summary>
public interface IReadinessCheck
{
    ValueTask<ReadinessResult> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Not ready while every upstream is unhealthy; otherwise ready while an upstream answered recently, else asks the first
/// available one right now.
/// </summary>
public sealed class UpstreamReadiness(UpstreamSet upstreams, IOptionsMonitor<MsiProxyOptions> options, TimeProvider time,
    IHttpClientFactory httpClients) : IReadinessCheck
{
    public const string ProbeClientName = "msiproxy-readiness";

    public async ValueTask<ReadinessResult> CheckAsync(CancellationToken cancellationToken)
    {
        var health = options.CurrentValue.Health;
        if (upstreams.Pick() is null)
        {
            // Every upstream failed its health checks: a recent answer does not make the proxy ready again.
            return new("upstream", false, "no upstream is available (all failed their health checks)");
        }

        if (upstreams.LastAnswer is { } last && time.GetUtcNow() - last < health.ReadyWindow)
        {
            return new("upstream", true, $"an upstream answered at {last:O}");
        }

        var candidate = upstreams.Pick()?.Address ?? upstreams.Current[0];
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
                return new("upstream", true, $"{candidate} answered {(int)response.StatusCode}");
            }

            return new("upstream", false, $"{candidate} answered {(int)response.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            return new("upstream", false, $"{candidate} did not answer ({ex.GetType().Name})");
        }
    }

    public static void AddProbeClient(IServiceCollection services) =>
        services.AddHttpClient(ProbeClientName).ConfigurePrimaryHttpMessageHandler(UpstreamHttp.Create);
}
