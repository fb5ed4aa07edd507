using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Kubernetes.Pods;

/// <summary>
/// List, then watch from the list's resourceVersion; a watch that ends is resumed from the last version seen (bookmarks included),
/// a 410 Gone relists at once, any other failure relists after a doubling delay, and a full relist happens every
/// <see cref="KubernetesOptions.ResyncInterval"/> regardless.
/// </summary>
internal sealed class PodWatcher(IPodSource source, PodRegistrations registrations, IOptions<MsiProxyOptions> options, TimeProvider time,
    ILogger<PodWatcher> logger) : BackgroundService
{
    private readonly KubernetesOptions _options = options.Value.Kubernetes;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = _options.ReconnectDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var list = await source.ListAsync(stoppingToken).ConfigureAwait(false);
                registrations.Replace(list.Pods);
                logger.LogInformation("Listed {Count} pods on this node at resourceVersion {ResourceVersion}", list.Pods.Count, list.ResourceVersion);
                delay = _options.ReconnectDelay;
                delay = await WatchUntilResyncAsync(list.ResourceVersion, delay, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (WatchExpiredException ex)
            {
                logger.LogInformation("Relisting pods: {Reason}", ex.Message);
            }
            catch (Exception ex)
            {
                logger.LogWarning("Pod list/watch failed, relisting in {Delay}: {Error}", delay, ex.Message);
                await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
                delay = Next(delay);
            }
        }
    }

    /// <summary>Watches (reconnecting as needed) until the resync interval is up; returns the reconnect delay to carry on with.</summary>
    private async Task<TimeSpan> WatchUntilResyncAsync(string resourceVersion, TimeSpan delay, CancellationToken stoppingToken)
    {
        using var resync = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        resync.CancelAfter(_options.ResyncInterval);
        try
        {
            while (true)
            {
                var events = 0;
                try
                {
                    await foreach (var change in source.WatchAsync(resourceVersion, resync.Token).ConfigureAwait(false))
                    {
                        events++;
                        switch (change.Kind)
                        {
                            case PodEventKind.Upserted:
                                registrations.Upsert(change.Pod!);
                                break;
                            case PodEventKind.Deleted:
                                registrations.Delete(change.Pod!);
                                break;
                        }

                        if (!string.IsNullOrEmpty(change.ResourceVersion))
                        {
                            resourceVersion = change.ResourceVersion;
                        }
                    }
                }
                catch (Exception ex) when (ex is IOException or HttpRequestException && !resync.IsCancellationRequested)
                {
                    // A connection that breaks mid-stream is a watch that ended: resume from the last version seen. If that
                    // version is too old by now, the server answers 410 and we relist.
                    logger.LogDebug("Pod watch broke: {Error}", ex.Message);
                }

                // The server ended the watch: its timeout, or a dropped connection. Resume where we were; back off only when
                // watches keep ending without delivering anything, so a broken server cannot make this spin.
                if (events > 0)
                {
                    delay = _options.ReconnectDelay;
                }
                else
                {
                    await Task.Delay(delay, time, resync.Token).ConfigureAwait(false);
                    delay = Next(delay);
                }

                logger.LogDebug("Pod watch ended after {Events} events; resuming from resourceVersion {ResourceVersion}", events, resourceVersion);
            }
        }
        catch (OperationCanceledException) when (resync.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
        {
            logger.LogDebug("Periodic pod resync");
            return delay;
        }
    }

    private TimeSpan Next(TimeSpan delay) =>
        TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
}
