using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// The two bounded queues between a request thread and the console (<see cref="ConsoleQueue"/>): <c>logs</c> (request lines
/// and every other event) drops its newest events when full, <c>audit</c> blocks the writer instead (backpressure), so
/// an audit event is never dropped. Both are visible as <c>msiproxy.log.dropped{kind}</c> and
/// <c>msiproxy.log.queued{kind}</c> on the meter <see cref="MeterName"/>.
/// </summary>
internal static class LogQueues
{
    /// <summary>The meter of the log queues' instruments.</summary>
    public const string MeterName = "MsiProxy.Logging";

    /// <summary>The configuration key of the capacity (events) of each queue.</summary>
    public const string CapacityKey = "MsiProxy:Logging:QueueCapacity";

    /// <summary>The default capacity of each queue.</summary>
    public const int DefaultCapacity = 10_000;

    private static readonly Meter Meter = new(MeterName);

    /// <summary>The configured capacity, or the default; anything but a whole number from 1 to 1,000,000 stops start-up.</summary>
    /// <exception cref="OptionsValidationException">The value is not a whole number from 1 to 1,000,000.</exception>
    public static int Capacity(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var value = configuration[CapacityKey];
        if (string.IsNullOrWhiteSpace(value))
        {
            return DefaultCapacity;
        }

        return int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var capacity)
            && capacity is >= 1 and <= 1_000_000
            ? capacity
            : throw new OptionsValidationException(CapacityKey, typeof(LogQueues),
                [$"{CapacityKey} = '{value}' must be a whole number of events from 1 to 1000000"]);
    }

    /// <summary>The queue of request lines and every other non-audit event; dropped (and counted) when full.</summary>
    internal static readonly Monitor Logs = new("logs");

    /// <summary>The queue of audit events; blocks the writer when full, never drops.</summary>
    internal static readonly Monitor Audit = new("audit");

    static LogQueues()
    {
        Meter.CreateObservableCounter("msiproxy.log.dropped", () => new[] { Logs.Dropped(), Audit.Dropped() }, "{event}",
            "Log events dropped because their queue to the console was full (kind: logs or audit; audit blocks instead, so stays 0).");
        Meter.CreateObservableGauge("msiproxy.log.queued", () => new[] { Logs.Queued(), Audit.Queued() }, "{event}",
            "Log events waiting in their queue to the console.");
    }

    /// <summary>
    /// Counts what every queue of its kind dropped, and watches the latest logger's queue (one per process) for its
    /// length. The count is the monitor's own, not read from the queues: a producer can still drop a line while its
    /// queue is being disposed, after any snapshot of the queue's count.
    /// </summary>
    internal sealed class Monitor(string kind)
    {
        private readonly KeyValuePair<string, object?> _tag = new("kind", kind);

        /// <summary>logs or audit.</summary>
        public string Kind => kind;
        private volatile ConsoleQueue? _queue;
        private long _dropped;

        public void StartMonitoring(ConsoleQueue queue) => _queue = queue;

        public void StopMonitoring(ConsoleQueue queue) => Interlocked.CompareExchange(ref _queue, null, queue);

        /// <summary>A queue of this kind dropped an event.</summary>
        public void CountDropped() => Interlocked.Increment(ref _dropped);

        internal Measurement<long> Dropped() => new(Interlocked.Read(ref _dropped), _tag);

        internal Measurement<int> Queued() => new(_queue?.Count ?? 0, _tag);
    }
}
