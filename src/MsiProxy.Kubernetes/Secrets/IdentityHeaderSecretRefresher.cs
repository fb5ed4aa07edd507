using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Kubernetes.Secrets;

/// <summary>
/// Reads the identity header Secrets that bindings name for this node's pods: at once when one is first needed, again every
/// <see cref="KubernetesOptions.SecretRefreshInterval"/> and on each pod relist (so a changed value takes effect), and,
/// while any read fails, with the pod watcher's doubling reconnect delay. A pod whose Secret cannot be read is not
/// registered (fail closed); every change of a Secret's state re-evaluates the pods. Only names reach the logs.
/// </summary>
internal sealed class IdentityHeaderSecretRefresher(ISecretSource source, IdentityHeaderSecrets secrets, PodRegistrations registrations,
    IOptions<MsiProxyOptions> options, TimeProvider time, ILogger<IdentityHeaderSecretRefresher> logger) : BackgroundService
{
    private readonly KubernetesOptions _options = options.Value.Kubernetes;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var retryDelay = _options.ReconnectDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            bool failed;
            try
            {
                failed = await RefreshAsync(stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            var wait = failed ? retryDelay : _options.SecretRefreshInterval;
            retryDelay = failed ? TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, _options.MaxReconnectDelay.Ticks)) : _options.ReconnectDelay;
            try
            {
                await secrets.WaitForRequestAsync(wait, time, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>One pass over every Secret the current pods need; returns true when any could not be read.</summary>
    private async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        var wanted = registrations.IdentityHeaderSecrets();
        var changed = false;
        var failed = false;
        foreach (var reference in wanted)
        {
            var read = await source.ReadAsync(reference, cancellationToken).ConfigureAwait(false);
            var previous = secrets.Set(reference, read);
            failed |= read.Digest is null;
            if (read == previous)
            {
                continue;
            }

            changed = true;
            if (read.Problem is { } problem)
            {
                logger.LogWarning("Cannot use the identity header in {Secret}: {Problem}. Pods of bindings naming it are not registered "
                    + "(they get 403) until it can be read; retrying", reference, problem);
            }
            else if (previous?.Digest is null)
            {
                logger.LogInformation("Read the identity header in {Secret}", reference);
            }
            else
            {
                logger.LogInformation("The identity header in {Secret} changed: its pods must now present the new value "
                    + "(pods that read it from their environment see it once restarted)", reference);
            }
        }

        secrets.Retain(wanted);
        if (changed)
        {
            registrations.Reevaluate();
        }

        return failed;
    }
}
