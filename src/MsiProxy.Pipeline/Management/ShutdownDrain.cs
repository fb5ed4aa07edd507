using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Management;

/// <summary>
/// The orderly stop on SIGTERM (what Docker and Kubernetes send) or Ctrl+C. First <c>/readyz</c> turns 503 while both
/// listeners keep serving for <c>MsiProxy:Shutdown:ReadinessDelay</c>, so whatever watches readiness stops sending;
/// then the host stops the server: Kestrel accepts no new connection and waits for the requests in flight, and the
/// whole stop is bounded by <c>MsiProxy:Shutdown:DrainTimeout</c> (<c>HostOptions.ShutdownTimeout</c>), after which what is
/// still running is cut off. The host calls every <see cref="IHostedLifecycleService.StoppingAsync"/> before it stops
/// any service, the server included, so the delay here comes before the listeners close.
/// </summary>
internal sealed partial class ShutdownDrain(IOptions<MsiProxyOptions> options, ILogger<ShutdownDrain> logger) : IHostedLifecycleService, IHealthCheck
{
    private volatile bool _stopping;

    public const string Name = "shutdown";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken) => Task.FromResult(_stopping
        ? HealthCheckResult.Unhealthy("shutting down: requests in flight finish, new ones should go elsewhere")
        : HealthCheckResult.Healthy("running"));

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        var shutdown = options.Value.Shutdown;
        LogStopping(shutdown.ReadinessDelay, shutdown.DrainTimeout);
        try
        {
            // Wall-clock time on purpose: the delay is for observers outside the process.
            await Task.Delay(shutdown.ReadinessDelay, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The drain timeout ran out already: stop now.
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Stopping: /readyz answers 503; the listeners close in {ReadinessDelay}, then requests in flight finish (all within {DrainTimeout})")]
    private partial void LogStopping(TimeSpan readinessDelay, TimeSpan drainTimeout);
}
