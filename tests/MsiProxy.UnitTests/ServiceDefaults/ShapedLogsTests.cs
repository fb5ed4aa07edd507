using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CsCheck;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using MsiProxy.ServiceDefaults;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Parsing;

namespace MsiProxy.UnitTests.ServiceDefaults;

/// <summary>
/// A shaped event (the request line, the audit event) skips Serilog, so its line is checked against Serilog's: for any
/// template, values, request and configured properties, the console gets the document <see cref="RenderedCompactJsonFormatter"/>
/// writes for the event Serilog's bridge would have made, and the <see cref="ILoggerProvider"/>s get the structured state.
/// </summary>
public sealed class ShapedLogsTests
{
    private static readonly MessageTemplateParser Parser = new();

    // JsonLinesTests' strings (what the two writers might escape differently, lone surrogates included), without braces.
    private static readonly Gen<string> Literal = JsonLinesTests.Text.Select(t => t.Replace("{", "", StringComparison.Ordinal).Replace("}", "", StringComparison.Ordinal));

    private static readonly Gen<string> HoleName = Gen.Select(Gen.Char['A', 'Z'], Gen.String[Gen.Char.AlphaNumeric, 0, 6], (first, rest) => first + rest);

    /// <summary>A hole's value (as the proxy passes it, and as Serilog's bridge would capture it) and its format.</summary>
    private sealed record Hole(LogValue Value, object? Boxed, string Format);

    private static readonly Gen<Hole> Holes = Gen.OneOf(
        JsonLinesTests.Text.Select(t => new Hole(t, t, "")),
        Gen.Const(new Hole((string?)null, null, "")),
        Gen.Select(Gen.Int, Gen.OneOf("", ":0.0", ":x8"), (n, format) => new Hole(n, n, format)),
        Gen.Select(Gen.OneOf(Gen.Double, Gen.Double[0, 10_000], Gen.OneOf(double.NaN, double.PositiveInfinity, -0.0, 5e-324)), Gen.OneOf("", ":0.0"),
            (d, format) => new Hole(d, d, format)));

    private sealed record Case(string Category, string Template, Hole[] Values, string[] Names, KeyValuePair<string, string>[] Properties,
        bool InRequest, string RequestId, string PathBase, string Path, string ConnectionId, bool Traced);

    private static readonly Gen<Case> Cases = Gen.Select(
            Gen.Dictionary(HoleName, Holes)[0, LogShape.MaxHoles],
            Literal.Array[LogShape.MaxHoles + 1],
            Gen.Dictionary(Gen.OneOf(HoleName, Gen.OneOf("SourceContext", "RequestId", "EventId", "@x", "Node")), JsonLinesTests.Text)[0, 3],
            Gen.Select(Gen.Bool, JsonLinesTests.Text, Gen.OneOf("", "/base"), JsonLinesTests.Text, JsonLinesTests.Text, (inRequest, id, pathBase, path, connection) => (inRequest, id, pathBase, path, connection)),
            Gen.Bool,
            Gen.OneOf("MsiProxy.Requests", "MsiProxy.Audit"),
            (holes, literals, properties, request, traced, category) =>
        {
            var template = new StringBuilder(literals[0]);
            var i = 0;
            foreach (var (name, hole) in holes)
            {
                template.Append('{').Append(name).Append(hole.Format).Append('}').Append(literals[++i]);
            }

            return new Case(category, template.ToString(), [.. holes.Values], [.. holes.Keys], [.. properties], request.inRequest,
                request.id, request.pathBase, "/" + request.path, request.connection, traced);
        }).Where(c => c.Template.Length > 0);

    [Fact]
    public void Any_shaped_event_is_the_line_Serilog_writes_for_the_event_its_bridge_would_make()
    {
        Cases.Sample(c =>
        {
            var shape = new LogShape(c.Category, new EventId(7, "Shaped"), c.Template);
            var values = new LogValues();
            for (var i = 0; i < c.Values.Length; i++)
            {
                values[i] = c.Values[i].Value;
            }

            var context = c.InRequest ? Request(c) : null;
            using var activity = c.Traced ? new Activity("request").Start() : null;
            var before = DateTime.UtcNow;
            var provider = new CapturingProvider();
            var ours = Written(c.Properties, [provider], logs => logs.For(shape).Write(values, context));
            var after = DateTime.UtcNow;
            using var oursJson = JsonDocument.Parse(ours);
            // The event is stamped when it is written: Serilog's event gets the same instant to compare the rest.
            var timestamp = oursJson.RootElement.GetProperty("@t").GetDateTime().ToUniversalTime();
            Assert.InRange(timestamp, before, after);
            var theirs = JsonLinesTests.SerilogLine(Expected(c, shape, activity, timestamp));

            Assert.EndsWith("\n", ours, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', ours.TrimEnd('\n', '\r'));
            using var theirsJson = JsonDocument.Parse(theirs);
            Assert.Equal(JsonLinesTests.Names(theirsJson.RootElement), JsonLinesTests.Names(oursJson.RootElement));
            Assert.True(JsonElement.DeepEquals(theirsJson.RootElement, oursJson.RootElement), $"template {c.Template}\n ours:    {ours}\n Serilog: {theirs}");

            // A provider (OpenTelemetry's) gets what Serilog passed on: the same message, the same properties.
            var captured = Assert.Single(provider.Events);
            Assert.Equal(oursJson.RootElement.GetProperty("@m").GetString(), JsonLines.WellFormed(captured.Message));
            Assert.Equal([.. JsonLinesTests.Names(theirsJson.RootElement).Where(n => n is not ("@t" or "@m" or "@i" or "@tr" or "@sp" or "EventId" or "SourceContext")), "{OriginalFormat}"],
                captured.State.Select(p => p.Key.StartsWith('@') ? "@" + p.Key : p.Key));
        }, iter: 1_000, threads: 1);
    }

    [Fact]
    public void Providers_get_the_holes_as_structured_state_and_the_rendered_message()
    {
        var shape = new LogShape("MsiProxy.Requests", new EventId(1, "RequestCompleted"), "{Caller} asked for {Path} → {StatusCode} in {DurationMs:0.0} ms");
        var provider = new CapturingProvider();
        var values = new LogValues();
        values[0] = "127.0.0.2";
        values[1] = "/a\"b";
        values[2] = 200;
        values[3] = 1.25;

        var line = Written([], [provider], logs => logs.For(shape).Write(values, null));

        var captured = Assert.Single(provider.Events);
        Assert.Equal(("MsiProxy.Requests", LogLevel.Information, 1, "RequestCompleted"), (captured.Category, captured.Level, captured.Id.Id, captured.Id.Name));
        Assert.Equal(
            [new("Caller", "127.0.0.2"), new("Path", "/a\"b"), new("StatusCode", 200), new("DurationMs", 1.25), new("{OriginalFormat}", shape.Template)],
            captured.State);
        Assert.Equal("\"127.0.0.2\" asked for \"/a\\\"b\" → 200 in 1.3 ms", captured.Message);
        using var json = JsonDocument.Parse(line);
        Assert.Equal(captured.Message, json.RootElement.GetProperty("@m").GetString());
    }

    [Fact]
    public void An_event_below_its_categorys_level_is_written_nowhere()
    {
        var shape = new LogShape("MsiProxy.Requests", new EventId(1, "RequestCompleted"), "{Caller} asked");
        var provider = new CapturingProvider();
        using var levels = LoggerFactory.Create(logging => logging.SetMinimumLevel(LogLevel.Warning).AddProvider(new CapturingProvider()));
        var values = new LogValues();
        values[0] = "127.0.0.2";

        ShapedLog? log = null;
        var line = Written([], [provider], logs => (log = logs.For(shape)).Write(values, null), levels);

        Assert.False(log!.IsEnabled);
        Assert.Equal("", line);
        Assert.Empty(provider.Events);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{0} positional")]
    [InlineData("{{escaped}}")]
    [InlineData("unclosed {Name")]
    [InlineData("stray } brace")]
    [InlineData("{@Destructured}")]
    [InlineData("{Twice} and {Twice}")]
    [InlineData("{A}{B}{C}{D}{E}{F}{G}{H}{I}{J}{K}{L}{M}")]
    [InlineData("{Name:l}")]
    [InlineData("{Amount:0\"}")]
    [InlineData("{Amount:0\\}")]
    [InlineData("{Amount:}")]
    public void A_template_a_shaped_event_cannot_render_as_Serilog_does_is_refused(string template)
    {
        Assert.Throws<ArgumentException>(() => new LogShape("MsiProxy.Requests", new EventId(1, "E"), template));
    }

    private static DefaultHttpContext Request(Case c)
    {
        var context = new DefaultHttpContext { TraceIdentifier = c.RequestId };
        context.Request.PathBase = c.PathBase.Length > 0 ? new PathString(c.PathBase) : PathString.Empty;
        context.Request.Path = new PathString(c.Path);
        context.Connection.Id = c.ConnectionId;
        return context;
    }

    /// <summary>The event as Serilog's bridge makes it: the holes, EventId, SourceContext, the request scope, then the configured properties.</summary>
    private static LogEvent Expected(Case c, LogShape shape, Activity? activity, DateTime timestamp)
    {
        var properties = new List<LogEventProperty>();
        for (var i = 0; i < c.Values.Length; i++)
        {
            properties.Add(new(c.Names[i], new ScalarValue(c.Values[i].Boxed)));
        }

        properties.Add(new("EventId", new StructureValue([new("Id", new ScalarValue(shape.EventId.Id)), new("Name", new ScalarValue(shape.EventId.Name))])));
        properties.Add(new("SourceContext", new ScalarValue(c.Category)));
        if (c.InRequest)
        {
            properties.Add(new("RequestId", new ScalarValue(c.RequestId)));
            // As ASP.NET Core's HostingLogScope has it: base and path, escaped.
            properties.Add(new("RequestPath", new ScalarValue((c.PathBase.Length > 0 ? new PathString(c.PathBase) + new PathString(c.Path) : new PathString(c.Path)).ToString())));
            properties.Add(new("ConnectionId", new ScalarValue(c.ConnectionId)));
        }

        foreach (var (name, value) in c.Properties)
        {
            if (properties.All(p => p.Name != name))
            {
                properties.Add(new(name, new ScalarValue(value)));
            }
        }

        return new LogEvent(new DateTimeOffset(timestamp), LogEventLevel.Information, null, Parser.Parse(c.Template), properties,
            activity?.TraceId ?? default, activity?.SpanId ?? default);
    }

    /// <summary>What the console got from <paramref name="log"/>, through a real pair of queues.</summary>
    private static string Written(KeyValuePair<string, string>[] properties, ILoggerProvider[] providers, Action<ShapedLogs> log, ILoggerFactory? levels = null)
    {
        var output = new MemoryStream();
        var console = new ConsoleOutput(output);
        using (var queues = new ConsoleQueues("MsiProxy.Audit",
            audit: new ConsoleQueue(new LogQueues.Monitor("audit"), 16, blockWhenFull: true, console),
            logs: new ConsoleQueue(new LogQueues.Monitor("logs"), 16, blockWhenFull: false, console)))
        {
            log(new ShapedLogs(queues, levels ?? Enabled, properties, providers));
        }

        return Encoding.UTF8.GetString(output.ToArray());
    }

    /// <summary>Levels that let every Information event through.</summary>
    private static readonly ILoggerFactory Enabled = LoggerFactory.Create(logging => logging.AddProvider(new CapturingProvider()));

    private sealed record Captured(string Category, LogLevel Level, EventId Id, List<KeyValuePair<string, object?>> State, string Message);

    private sealed class CapturingProvider : ILoggerProvider
    {
        public List<Captured> Events { get; } = [];

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, Events);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, List<Captured> events) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                events.Add(new Captured(category, logLevel, eventId, [.. (IEnumerable<KeyValuePair<string, object?>>)state!], formatter(state, exception)));
        }
    }
}
