using System.Collections;
using System.Text;
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
    private readonly ILoggerFactory _levels;
    private readonly IReadOnlyList<KeyValuePair<string, string>> _properties;
    private readonly ILoggerProvider[] _providers;

    internal ShapedLogs(ConsoleQueues console, ILoggerFactory levels, IReadOnlyList<KeyValuePair<string, string>> properties,
        IEnumerable<ILoggerProvider> providers)
    {
        _console = console;
        _levels = levels;
        // As the console must carry them: a value with a lone surrogate is written with U+FFFD in its place.
        _properties = [.. properties.Select(p => KeyValuePair.Create(p.Key, JsonLines.WellFormed(p.Value)!))];
        _providers = [.. providers];
    }

    /// <summary>The writer of one shape's events.</summary>
    public ShapedLog For(LogShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        return new ShapedLog(shape, _levels.CreateLogger(shape.Category), _console.QueueOf(shape.Category),
            Configured(shape, inRequest: false), Configured(shape, inRequest: true), [.. _providers.Select(p => p.CreateLogger(shape.Category))]);
    }

    /// <summary>The configured properties the event gets: never one that replaces its own (Serilog adds them only where absent).</summary>
    private ConfiguredProperty[] Configured(LogShape shape, bool inRequest)
    {
        var own = new HashSet<string>(shape.Holes.Select(h => h.Name), StringComparer.Ordinal) { "EventId", "SourceContext" };
        if (inRequest)
        {
            own.UnionWith(ShapedLine.RequestScope);
        }

        return [.. _properties.Where(p => own.Add(p.Key)).Select(p => new ConfiguredProperty(p.Key, p.Value))];
    }
}

/// <summary>Writes one <see cref="LogShape"/>'s events (<see cref="ShapedLogs"/>).</summary>
public sealed class ShapedLog
{
    private readonly LogShape _shape;
    private readonly ILogger _level;
    private readonly ConsoleQueue _queue;
    private readonly ConfiguredProperty[] _properties;
    private readonly ConfiguredProperty[] _requestProperties;
    private readonly ILogger[] _loggers;

    internal ShapedLog(LogShape shape, ILogger level, ConsoleQueue queue, ConfiguredProperty[] properties,
        ConfiguredProperty[] requestProperties, ILogger[] loggers)
    {
        _shape = shape;
        _level = level;
        _queue = queue;
        _properties = properties;
        _requestProperties = requestProperties;
        _loggers = loggers;
    }

    /// <summary>Whether the configured level lets the event through: ask before gathering its values.</summary>
    public bool IsEnabled => _level.IsEnabled(LogLevel.Information);

    /// <summary>Writes the event: <paramref name="values"/> in the template's order; <paramref name="context"/> adds the request scope.</summary>
    public void Write(in LogValues values, HttpContext? context)
    {
        if (!IsEnabled)
        {
            return;
        }

        var properties = context is null ? _properties : _requestProperties;
        _queue.Emit(new ShapedLine(_shape, in values, context, DateTime.UtcNow, properties));
        if (_loggers.Length == 0)
        {
            return;
        }

        var state = new ShapedState(_shape, values, context is null ? null : new RequestScope(context), properties);
        foreach (var logger in _loggers)
        {
            try
            {
                if (logger.IsEnabled(LogLevel.Information))
                {
                    logger.Log(LogLevel.Information, _shape.EventId, state, null, static (state, _) => state.ToString());
                }
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // As Serilog treats a failing sink: the request that logged goes on.
                Serilog.Debugging.SelfLog.WriteLine("A logger provider failed on a {0} event: {1}", _shape.EventId.Name, ex);
            }
        }
    }
}

/// <summary>A configured property (<c>Serilog:Properties</c>), written for the console once.</summary>
internal sealed class ConfiguredProperty(string name, string value)
{
    public string Name { get; } = name;

    public string Value { get; } = value;

    /// <summary>
    /// The property in the line, comma first: <c>,"Name":"value"</c>. As Serilog writes them, a name starting with '@'
    /// gets another, so that it cannot read as one of the line's own fields.
    /// </summary>
    public byte[] Json { get; } = Encoding.UTF8.GetBytes(
        $",\"{JsonLines.Options.Encoder!.Encode(name.StartsWith('@') ? "@" + name : name)}\":\"{JsonLines.Options.Encoder!.Encode(value)}\"");
}

/// <summary>ASP.NET Core's request scope, as its hosting layer logs it (and Serilog's bridge adds it).</summary>
internal readonly record struct RequestScope(string RequestId, string RequestPath, string ConnectionId)
{
    public RequestScope(HttpContext context)
        : this(context.TraceIdentifier, ShapedLine.RequestPath(context), context.Connection.Id)
    {
    }
}

/// <summary>A shaped event on its way to the console: formatted on the thread that logs it, like a Serilog event.</summary>
internal readonly ref struct ShapedLine : IConsoleLine
{
    private readonly ref readonly LogValues _values;

    public ShapedLine(LogShape shape, ref readonly LogValues values, HttpContext? context, DateTime timestamp, ConfiguredProperty[] properties)
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

    public ConfiguredProperty[] Properties { get; }

    /// <summary>The names of ASP.NET Core's request scope.</summary>
    public static readonly string[] RequestScope = ["RequestId", "RequestPath", "ConnectionId"];

    /// <summary>The request's path as ASP.NET Core's request scope has it: base and path, escaped (<see cref="PathString.ToString"/>).</summary>
    public static string RequestPath(HttpContext context)
    {
        var request = context.Request;
        return (request.PathBase.HasValue ? request.PathBase + request.Path : request.Path).ToString();
    }

    public void WriteTo(JsonLines lines, MemoryStream output) => lines.Write(this, output);
}

/// <summary>
/// A shaped event as an <see cref="ILoggerProvider"/> receives it: the holes' names and values, the request scope, the
/// configured properties, then <c>{OriginalFormat}</c> — the properties Serilog passed on for the event. The values are
/// a copy, so a provider that keeps the state (an exporter's batch) keeps what was logged.
/// </summary>
internal readonly struct ShapedState(LogShape shape, LogValues values, RequestScope? scope, ConfiguredProperty[] properties)
    : IReadOnlyList<KeyValuePair<string, object?>>
{
    private readonly LogValues _values = values;

    private int ScopeCount => scope is null ? 0 : ShapedLine.RequestScope.Length;

    public int Count => shape.Holes.Count + ScopeCount + properties.Length + 1;

    public KeyValuePair<string, object?> this[int index]
    {
        get
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            if (index < shape.Holes.Count)
            {
                return new(shape.Holes[index].Name, _values[index].Boxed);
            }

            index -= shape.Holes.Count;
            if (index < ScopeCount)
            {
                var request = scope!.Value;
                return new(ShapedLine.RequestScope[index], index switch { 0 => request.RequestId, 1 => request.RequestPath, _ => request.ConnectionId });
            }

            index -= ScopeCount;
            if (index < properties.Length)
            {
                return new(properties[index].Name, properties[index].Value);
            }

            return index == properties.Length ? new("{OriginalFormat}", shape.Template) : throw new ArgumentOutOfRangeException(nameof(index));
        }
    }

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
