using Microsoft.Extensions.Options;
using MsiProxy.Telemetry;

namespace MsiProxy.Docker;

/// <summary>
/// Follows the Docker engine: subscribes to events, reconciles once, then reconciles after every relevant event, when
/// a caller is being discovered, when a failed wiring is due and every <see cref="DockerMonitorOptions.ReconcileInterval"/>.
/// A lost event stream or an unreachable engine: reconnect with backoff, then reconcile (whatever happened meanwhile is
/// in the list).
/// </summary>
internal sealed partial class ContainerMonitor(
    IContainerEngine engine,
    ContainerReconciler reconciler,
    ReconcileTrigger trigger,
    DockerCallerDiscovery discovery,
    MonitorState state,
    IOptions<DockerMonitorOptions> options,
    MsiProxyTelemetry telemetry,
    TimeProvider time,
    ILogger<ContainerMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            using var session = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            Task? pump = null;
            try
            {
                // Subscribe before listing, so nothing that happens during the first reconcile is missed.
                pump = PumpEventsAsync(session.Token);
                await PassAsync(stoppingToken).ConfigureAwait(false);
                if (failures > 0)
                {
                    LogReconnected(failures);
                }

                failures = 0;
                await FollowAsync(pump, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                failures++;
                state.Disconnected($"{ex.GetType().Name}: {ex.Message}");
                telemetry.MonitorErrors.Add(1, new KeyValuePair<string, object?>("action", "engine"));
                var delay = options.Value.Backoff(failures);
                LogEngineFailed(ex, failures, delay);
                try
                {
                    await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            finally
            {
                await session.CancelAsync().ConfigureAwait(false);
                if (pump is not null)
                {
                    await pump.ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
                        .ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Reconciles on events, due retries and the periodic timer until the event stream is lost (then throws).</summary>
    private async Task FollowAsync(Task pump, CancellationToken stoppingToken)
    {
        while (true)
        {
            var wait = options.Value.ReconcileInterval;
            if (reconciler.NextRetryAt is { } retryAt)
            {
                var untilRetry = retryAt - time.GetUtcNow();
                wait = untilRetry < TimeSpan.Zero ? TimeSpan.Zero : untilRetry < wait ? untilRetry : wait;
            }

            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
            var signalled = trigger.WaitAsync(waiting.Token);
            var timer = Task.Delay(wait, time, waiting.Token);
            var first = await Task.WhenAny(signalled, timer, pump).ConfigureAwait(false);
            await waiting.CancelAsync().ConfigureAwait(false);
            stoppingToken.ThrowIfCancellationRequested();
            if (first == pump)
            {
                await pump.ConfigureAwait(false); // rethrows why the stream ended
                throw new IOException("The Docker event stream ended.");
            }

            await PassAsync(stoppingToken).ConfigureAwait(false);
        }
    }

    /// <summary>One reconcile; then callers waiting to be discovered learn what it found.</summary>
    private async Task PassAsync(CancellationToken stoppingToken)
    {
        var start = trigger.BeginPass();
        await reconciler.ReconcileAsync(stoppingToken).ConfigureAwait(false);
        discovery.PassCompleted(start);
    }

    private async Task PumpEventsAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        await foreach (var item in engine.WatchAsync(cancellationToken).ConfigureAwait(false))
        {
            if (item.ChangesState)
            {
                telemetry.MonitorEvents.Add(1, new KeyValuePair<string, object?>("action", "event"));
                LogEvent(item.Type, item.Action, item.ContainerId);
                trigger.EventArrived(); // coalesced: one reconcile covers any number of events
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Docker event {Type} {Action} for container {ContainerId}")]
    private partial void LogEvent(string type, string action, string containerId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker engine unreachable or event stream lost (failure {Failures}); reconnecting in {Delay}")]
    private partial void LogEngineFailed(Exception exception, int failures, TimeSpan delay);

    [LoggerMessage(Level = LogLevel.Information, Message = "Docker engine reachable again after {Failures} failures; reconciled")]
    private partial void LogReconnected(int failures);
}
