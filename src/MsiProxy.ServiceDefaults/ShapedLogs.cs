using System.Collections;
using System.Text.Json;
using Serilog.Events;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// The way to log an Information event of fixed shape that is written once per request (the request line, the audit
/// event): straight to the console's queue as the JSON line the Serilog pipeline would write for it, and to the
/// <see cref="ILoggerProvider"/>s (OpenTelemetry's, a test's capture) as structured state. Everything else is logged
/// through <see cref="ILogger"/> and Serilog as usual. Why a second way: with the request line and audit event on, the
/// bridge from Microsoft.Extensions.Logging to Serilog and the formatting of its <see cref="LogEvent"/> were 29 % of the
/// Native AOT build's CPU on the cached-hit path (docs/benchmarks.md, "Logging off the request thread").
/// </summary>
/// <remarks>
/// Whether the event is written at all stays the configured level's decision: ask the category's <see cref="ILogger"/>
/// (<c>IsEnabled</c>) first, as for any event. Serilog's <c>LogContext</c> properties are not added (nothing in the
/// proxy pushes any); the configured <c>Serilog:Properties</c> are.
/// </remarks>
public sealed class ShapedLogs
{
    private readonly ConsoleQueues _console;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _properties;
    private readonly ILoggerProvider[] _providers;

    internal ShapedLogs(ConsoleQueues console, IReadOnlyList<KeyValuePair<string, string>> properties, IEnumerable<ILoggerProvider> providers)
    {
        _console = console;
        _properties = properties;
        _providers = [.. providers];
    }

    /// <summary>The writer of one shape's events.</summary>
    public ShapedLog For(LogShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return new ShapedLog(shape, _console.QueueOf(shape.Category), Configured(shape, inRequest: false), Configured(shape, inRequest: true),
            [.. _providers.Select(p => p.CreateLogger(shape.Category))]);
    }

    /// <summary>The configured properties the event gets: never one that replaces its own (Serilog adds them only where absent).</summary>
    private (JsonEncodedText Name, string Value)[] Configured(LogShape shape, bool inRequest)
    {
        var own = new HashSet<string>(shape.Holes.Select(h => h.Name), StringComparer.Ordinal) { "EventId", "SourceContext" };
        if (inRequest)
        {
            own.UnionWith(["RequestId", "RequestPath", "ConnectionId"]);
        }

        return [.. _properties.Where(p => own.Add(p.Key)).Select(p => (JsonEncodedText.Encode(p.Key.StartsWith('@') ? "@" + p.Key : p.Key), p.Value))];
    }
}

/// <summary>Writes one <see cref="LogShape"/>'s events (<see cref="ShapedLogs"/>).</summary>
public sealed class ShapedLog
{
    private readonly LogShape _shape;
    private readonly ConsoleQueue _queue;
    private readonly (JsonEncodedText Name, string Value)[] _properties;
    private readonly (JsonEncodedText Name, string Value)[] _requestProperties;
    private readonly ILogger[] _loggers;

    internal ShapedLog(LogShape shape, ConsoleQueue queue, (JsonEncodedText Name, string Value)[] properties,
        (JsonEncodedText Name, string Value)[] requestProperties, ILogger[] loggers)
    {
        _shape = shape;
        _queue = queue;
        _properties = properties;
        _requestProperties = requestProperties;
        _loggers = loggers;
    }

    /// <summary>Writes the event: <paramref name="values"/> in the template's order; <paramref name="context"/> adds the request scope.</summary>
    public void Write(in LogValues values, HttpContext? context)
    {
        _queue.Emit(new ShapedLine(_shape, in values, context, DateTime.UtcNow, context is null ? _properties : _requestProperties));
        foreach (var logger in _loggers)
        {
            if (logger.IsEnabled(LogLevel.Information))
            {
                logger.Log(LogLevel.Information, _shape.EventId, new ShapedState(_shape, values), null, static (state, _) => state.ToString());
            }
        }
    }
}

/// <summary>A shaped event on its way to the console: formatted on the thread that logs it, like a Serilog event.</summary>
internal readonly ref struct ShapedLine : IConsoleLine
{
    private readonly ref readonly LogValues _values;

    public ShapedLine(LogShape shape, ref readonly LogValues values, HttpContext? context, DateTime timestamp,
        (JsonEncodedText Name, string Value)[] properties)
    {
        Shape = shape;
        _values = ref values;
        Context = context;
        Timestamp = timestamp;
        Properties = properties;
    }

    public LogShape Shape { get; }

    public ref readonly LogValues Values => ref _values;

    public HttpContext? Context { get; }

    public DateTime Timestamp { get; }

    public (JsonEncodedText Name, string Value)[] Properties { get; }

    public void WriteTo(JsonLines lines, MemoryStream output) => lines.Write(this, output);
}

/// <summary>
/// A shaped event as an <see cref="ILoggerProvider"/> receives it: the holes' names and values, then
/// <c>{OriginalFormat}</c>, as Microsoft.Extensions.Logging's own generated state; the values are a copy, so a provider
/// that keeps the state (an exporter's batch) keeps what was logged.
/// </summary>
internal readonly struct ShapedState(LogShape shape, LogValues values) : IReadOnlyList<KeyValuePair<string, object?>>
{
    private readonly LogValues _values = values;

    public int Count => shape.Holes.Count + 1;

    public KeyValuePair<string, object?> this[int index] =>
        index < shape.Holes.Count ? new(shape.Holes[index].Name, _values[index].Boxed)
        : index == shape.Holes.Count ? new("{OriginalFormat}", shape.Template)
        : throw new ArgumentOutOfRangeException(nameof(index));

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => shape.Render(_values);
}
