using Serilog.Core;
using Serilog.Events;
using Serilog.Filters;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// The one sink in front of the two <see cref="ConsoleQueue"/>s: an event of the audit category goes to the audit queue
/// (backpressure), any other to the logs queue (dropped and counted when full). Why not two of Serilog's sub-loggers
/// (<c>WriteTo.Logger</c>, a filter each): a sub-logger copies every event it is given, properties and all, before its
/// filter looks at it — two copies per event on the request thread, for queues that only read the event.
/// </summary>
internal sealed class ConsoleQueues(string auditCategory, ConsoleQueue audit, ConsoleQueue logs, ConsoleWriter? sharedWriter = null)
    : ILogEventSink, IDisposable
{
    private readonly Func<LogEvent, bool> _isAudit = Matching.FromSource(auditCategory);

    /// <summary>The two queues, of <paramref name="capacity"/> events each, written by one thread (<see cref="ConsoleWriter"/>), the audit trail first.</summary>
    public static ConsoleQueues Create(string auditCategory, int capacity, ConsoleOutput output)
    {
        var writer = new ConsoleWriter("log writer");
        var audit = new ConsoleQueue(LogQueues.Audit, capacity, blockWhenFull: true, output, writer);
        var logs = new ConsoleQueue(LogQueues.Logs, capacity, blockWhenFull: false, output, writer);
        writer.Start(audit, logs);
        return new ConsoleQueues(auditCategory, audit, logs, writer);
    }

    public void Emit(LogEvent logEvent) => (_isAudit(logEvent) ? audit : logs).Emit(logEvent);

    /// <summary>The queue of a category's events (<see cref="ShapedLogs"/>), matched as <see cref="Matching.FromSource(string)"/> matches.</summary>
    public ConsoleQueue QueueOf(string category) =>
        category == auditCategory || (category.StartsWith(auditCategory, StringComparison.Ordinal) && category[auditCategory.Length] == '.') ? audit : logs;

    /// <summary>Writes out both queues: the audit trail first, as it is the one that must not be lost.</summary>
    public void Dispose()
    {
        // Both stop taking lines before the writer they share stops: neither is left queueing for a writer that is gone.
        audit.BeginStopping();
        logs.BeginStopping();
        sharedWriter?.Dispose();
        audit.Dispose();
        logs.Dispose();
    }
}
