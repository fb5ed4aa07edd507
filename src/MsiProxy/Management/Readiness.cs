using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Forwarding;
using MsiProxy.Upstreams;

namespace MsiProxy.Management;

internal sealed record ReadinessResult(string Name, bool Ready, string Detail);

/// <summary>One thing <c>/readyz</c> waits for. The upstream check is built in; the container monitor adds its own.</summary>
internal interface IReadinessCheck
{
    ValueTask<ReadinessResult> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>
/// Ready while an upstream is available (by the health checks) and one answered recently; without a recent answer, asks
/// the first available one right now. With no upstream available the proxy can only serve cached tokens: not ready.
/// </summary>
internal sealed class UpstreamReadiness(UpstreamSet upstreams, IOptions<MsiProxyOptions> options, TimeProvider time,
    IHttpClientFactory httpClients) : IReadinessCheck
{
    public const string ProbeClientName = "msiproxy-readiness";

    public async ValueTask<ReadinessResult> CheckAsync(CancellationToken cancellationToken)
    {
        var health = options.Value.Health;
        var available = upstreams.Pick();
        if (available is null)
        {
            var states = string.Join(", ", upstreams.Describe().Select(u => $"{u.Address} active={u.Active} passive={u.Passive}"));
            return new("upstream", false, $"no upstream is available ({states})");
        }

        if (upstreams.LastAnswer is { } last && time.GetUtcNow() - last < health.ReadyWindow)
        {
            return new("upstream", true, $"{available.Address} is available; an upstream answered at {last:O}");
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
