using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Interception.Kubernetes;

/// <summary>
/// Keeps the <see cref="PodRules"/> in place: installs them at start-up (failing start-up if it cannot: the operator
/// asked for the transparent path and would otherwise get pods that reach nothing, silently), puts back whatever
/// something removed every <c>Dnat:ReconcileInterval</c>, and on shutdown leaves them: until a proxy runs again pods
/// are refused, not served by IMDS. <c>MsiProxy uninstall-pod-rules</c> is the one way they go.
/// </summary>
public sealed partial class PodRulesService(PodRules rules, IOptions<MsiProxyOptions> options, TimeProvider time, ILogger<PodRulesService> logger)
    : BackgroundService
{
    private readonly DnatOptions _options = options.Value.Kubernetes.Dnat;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var changes = await rules.EnsureAsync(cancellationToken).ConfigureAwait(false);
        LogInPlace(changes.Count == 0 ? "in place" : string.Join(", ", changes), string.Join(" | ", PodRules.Describe(_options)));
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.ReconcileInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                if (await rules.EnsureAsync(stoppingToken).ConfigureAwait(false) is { Count: > 0 } changes)
                {
                    LogPutBack(string.Join(", ", changes));
                }
            }
            catch (InvalidOperationException ex)
            {
                LogReconcileFailed(ex.Message);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        LogLeftInPlace();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Pod rules {Detail}: {Rules}")]
    private partial void LogInPlace(string detail, string rules);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Pod rules had been changed and were put back: {Changes}")]
    private partial void LogPutBack(string changes);

    [LoggerMessage(Level = LogLevel.Error, Message = "Could not reconcile the pod rules: {Error}")]
    private partial void LogReconcileFailed(string error);

    [LoggerMessage(Level = LogLevel.Information,
        Message = "Pod rules left in place: pods' IMDS connections are refused until a proxy runs again ('MsiProxy uninstall-pod-rules' removes them)")]
    private partial void LogLeftInPlace();
}
