using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Interception.Kubernetes;

/// <summary>
/// Installs the DNAT rule at start-up (failing start-up if it cannot: without it pods silently reach nothing), puts it back
/// whenever something removed it, and deletes it on shutdown so an uninstalled proxy leaves no redirect behind.
/// </summary>
internal sealed class DnatRuleService(DnatRule rule, IOptions<MsiProxyOptions> options, TimeProvider time, ILogger<DnatRuleService> logger)
    : BackgroundService
{
    private readonly DnatOptions _options = options.Value.Kubernetes.Dnat;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await rule.EnsureAsync(cancellationToken).ConfigureAwait(false);
        logger.LogInformation("IMDS DNAT rule installed: {Rule}", string.Join(' ', rule.Specification));
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.ReconcileInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                if (await rule.EnsureAsync(stoppingToken).ConfigureAwait(false))
                {
                    logger.LogWarning("The IMDS DNAT rule had disappeared and was put back");
                }
            }
            catch (InvalidOperationException ex)
            {
                logger.LogError("Could not reconcile the IMDS DNAT rule: {Error}", ex.Message);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await rule.RemoveAsync(cancellationToken).ConfigureAwait(false);
            logger.LogInformation("IMDS DNAT rule removed");
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
        {
            logger.LogError("Could not remove the IMDS DNAT rule: {Error}", ex.Message);
        }
    }
}
