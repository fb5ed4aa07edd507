using System.Diagnostics;
using System.Text;
using System.Text.Json;
using CsCheck;
using MsiProxy.ServiceDefaults;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Parsing;

namespace MsiProxy.UnitTests.ServiceDefaults;

/// <summary>
/// The console's JSON lines are Serilog's compact JSON, written another way: for any event, the same document (fields,
/// their order, every value) as <see cref="RenderedCompactJsonFormatter"/>, on one line.
/// </summary>
public sealed class JsonLinesTests
{
    private static readonly RenderedCompactJsonFormatter Serilog = new();
    private static readonly MessageTemplateParser Parser = new();

    // Characters that are escaped, or not, differently by the two writers: controls, quotes, backslashes, braces,
    // '@', non-ASCII, a line separator, lone surrogates and a surrogate pair's halves.
    private static readonly Gen<char> Chars = Gen.OneOf(
        Gen.Char['a', 'z'], Gen.Char[' ', '~'], Gen.Char['\0', '\u001f'],
        Gen.OneOf('"', '\\', '{', '}', '@', '\u007f', 'é', '→', '\u2028', '\ud800', '\udc00', '\ud83d', '\ude00', '\ufffd'));

    /// <summary>Strings of those characters (ShapedLogsTests uses them too).</summary>
    internal static readonly Gen<string> Text = Gen.String[Chars, 0, 24];

    private static readonly Gen<string> TemplateName = Gen.Select(Gen.Char['A', 'Z'], Gen.String[Gen.Char.AlphaNumeric, 0, 6], (first, rest) => first + rest);

    private static readonly Gen<LogEventPropertyValue> Scalar = Gen.OneOf(
            Box(Text), Box(Gen.Int), Box(Gen.Long), Box(Gen.Bool), Gen.Const((object?)null), Box(Gen.Decimal), Box(Gen.Float), Box(Gen.UInt),
            Box(Gen.Char), Box(Gen.Double), Box(Gen.OneOf(double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0, 1e300, 5e-324)),
            Box(Gen.DateTime), Box(Gen.DateTimeOffset), Box(Gen.Guid), Box(Gen.TimeSpan))
        .Select(value => (LogEventPropertyValue)new ScalarValue(value));

    private static readonly Gen<LogEventPropertyValue> Value = Gen.Recursive<LogEventPropertyValue>((depth, value) => depth >= 3
        ? Scalar
        : Gen.Frequency(
            (6, Scalar),
            (1, value.Array[0, 3].Select(elements => (LogEventPropertyValue)new SequenceValue(elements))),
            (1, Gen.Select(Gen.Dictionary(TemplateName, value)[0, 3], Gen.OneOf<string?>(null, "Endpoint", "a\"b"),
                (properties, tag) => (LogEventPropertyValue)new StructureValue(properties.Select(p => new LogEventProperty(p.Key, p.Value)), tag))),
            (1, Gen.Dictionary(Gen.Int[0, 9], value)[0, 3].Select(entries =>
                (LogEventPropertyValue)new DictionaryValue(entries.Select(e => KeyValuePair.Create(new ScalarValue(e.Key), e.Value)))))));

    private static Gen<object?> Box<T>(Gen<T> gen) => gen.Select(value => (object?)value);

    private sealed record Generated(LogEvent Event, string Template);

    /// <summary>An event: a template over some of its properties (with formats and hints), more properties named anything.</summary>
    private static readonly Gen<Generated> Events = Gen.Select(
            Gen.Dictionary(TemplateName, Value)[0, 5],
            Gen.Dictionary(Text.Where(n => !string.IsNullOrWhiteSpace(n)), Value)[0, 3],
            Gen.Select(Text, Text, Gen.OneOf("", ":0.0", ",8", ":x8", ":l"), Gen.OneOf("", "@", "$"), (a, b, format, hint) => (a, b, format, hint)),
            Gen.Enum<LogEventLevel>(),
            Gen.Bool,
            Gen.Bool,
            Gen.DateTimeOffset,
            (named, extra, shape, level, withException, traced, timestamp) =>
        {
            var text = new StringBuilder(shape.a.Replace("{", "{{").Replace("}", "}}"));
            foreach (var name in named.Keys)
            {
                text.Append('{').Append(shape.hint).Append(name).Append(shape.format).Append('}').Append(shape.b.Replace("{", "{{").Replace("}", "}}"));
            }

            var properties = named.Select(p => new LogEventProperty(p.Key, p.Value))
                .Concat(extra.Where(p => !named.ContainsKey(p.Key)).Select(p => new LogEventProperty(p.Key, p.Value)));
            var logEvent = new LogEvent(timestamp, level, withException ? new InvalidOperationException(shape.a) : null, Parser.Parse(text.ToString()),
                properties, traced ? ActivityTraceId.CreateRandom() : default, traced ? ActivitySpanId.CreateRandom() : default);
            return new Generated(logEvent, text.ToString());
        });

    [Fact]
    public void Any_event_is_the_same_document_as_Serilogs_compact_JSON_in_the_same_order_on_one_line()
    {
        using var lines = new JsonLines();
        Events.Sample(generated =>
        {
            var ours = Line(lines, generated.Event);
            string theirs;
            try
            {
                theirs = SerilogLine(generated.Event);
            }
            catch (FormatException)
            {
                // A format the value does not take ({Amount:x8} of a decimal): neither can write it, and it is skipped.
                Assert.Equal("", ours);
                return;
            }

            Assert.EndsWith(Environment.NewLine, ours, StringComparison.Ordinal);
            Assert.DoesNotContain('\n', ours[..^Environment.NewLine.Length]);
            Assert.DoesNotContain('\r', ours[..^Environment.NewLine.Length]);

            using var theirsJson = JsonDocument.Parse(theirs);
            using var oursJson = ParseOrFail(ours, theirs);
            Assert.Equal(Names(theirsJson.RootElement), Names(oursJson.RootElement));
            Assert.True(JsonElement.DeepEquals(theirsJson.RootElement, oursJson.RootElement), $"template {generated.Template}\n ours:   {ours}\n Serilog: {theirs}");
        }, iter: 3_000, threads: 1); // one writer, reused from event to event as a queue's writer thread does: it is not thread-safe
    }

    [Fact]
    public void A_request_line_is_byte_for_byte_what_Serilog_writes()
    {
        var template = Parser.Parse("{Caller} ({ClientName}) {Method} {Path} → {StatusCode} {Outcome} via {Upstream} [{ClientRequestId}] in {DurationMs:0.0} ms");
        var logEvent = new LogEvent(DateTimeOffset.Parse("2026-12-03T00:12:04.2662168Z"), LogEventLevel.Information, null, template,
        [
            new("DurationMs", new ScalarValue(113.8026)), new("ClientRequestId", new ScalarValue(null)), new("Upstream", new ScalarValue("http://127.0.0.1:18080")),
            new("Outcome", new ScalarValue("miss")), new("StatusCode", new ScalarValue(200)), new("Path", new ScalarValue("/metadata/identity/oauth2/token")),
            new("Method", new ScalarValue("GET")), new("ClientName", new ScalarValue("bench-1")), new("Caller", new ScalarValue("127.0.0.1")),
            new("EventId", new StructureValue([new("Id", new ScalarValue(1)), new("Name", new ScalarValue("RequestCompleted"))])),
            new("SourceContext", new ScalarValue("MsiProxy.Requests")), new("ConnectionId", new ScalarValue("0HNQGQ87LVN1F")),
        ], ActivityTraceId.CreateFromString("3b5296da5985c887f3637453e5893d98"), ActivitySpanId.CreateFromString("510a6647c724aea2"));

        using var lines = new JsonLines();
        Assert.Equal(SerilogLine(logEvent), Line(lines, logEvent));
    }

    [Fact]
    public void A_number_is_rendered_as_dotnet_formats_it()
    {
        // Ties of every format below (multiples of 0.0005) and the doubles either side of them, where a shortcut that
        // rounds the scaled double differs from .NET's rounding of 15 digits; durations, measured or not; any double;
        // the edges. A null format is the shortest round trip, as a property's value is written.
        var ties = Gen.Int[0, 20_000_000].Select(k => k / 2_000.0);
        var numbers = Gen.OneOf(
            ties, ties.Select(Math.BitIncrement), ties.Select(Math.BitDecrement),
            Gen.Double[0, 10_000], Gen.Double,
            // Durations as the proxy measures them (whole ticks), up to 10 s and up to past the shortcut's bound.
            Gen.Long[0, 100_000_000].Select(ticks => TimeSpan.FromTicks(ticks).TotalMilliseconds),
            Gen.Long[0, 2_000_000_000_000_000].Select(ticks => TimeSpan.FromTicks(ticks).TotalMilliseconds),
            Gen.OneOf(-0.0, -0.04, 0.0, 5e-324, 0.00005, 0.0001, 0.05, 0.25, 2.675, 1e300, 858_993.45925, 8_589_934_591.9, 8_589_934_592.0,
                99_999_999_999.9999, 1e11));
        Gen.Select(numbers, Gen.OneOf("0.0", "0.00", "0.000", "0.0000", "0.00000", "0.000000", "0.0000000", "0.#", null)).Sample((value, format) =>
        {
            var line = new JsonLineBuffer();
            line.AppendNumber(value, format);
            var rendered = Encoding.UTF8.GetString(line.Written);
            Assert.Equal(value.ToString(format, System.Globalization.CultureInfo.InvariantCulture), rendered);
        }, iter: 200_000);
    }

    [Fact]
    public void An_event_no_formatter_can_write_is_skipped_and_the_next_one_is_written()
    {
        using var lines = new JsonLines();
        var output = new MemoryStream();
        lines.Write(Event("broken {Value}", new ScalarValue(new Unprintable())), output);
        lines.Write(Event("fine {Value}", new ScalarValue(7)), output);

        var written = Encoding.UTF8.GetString(output.ToArray());
        using var json = JsonDocument.Parse(written);
        Assert.Equal("fine 7", json.RootElement.GetProperty("@m").GetString());
    }

    private static LogEvent Event(string template, LogEventPropertyValue value) =>
        new(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, Parser.Parse(template), [new("Value", value)]);

    private static string Line(JsonLines lines, LogEvent logEvent)
    {
        var output = new MemoryStream();
        lines.Write(logEvent, output);
        return Encoding.UTF8.GetString(output.ToArray());
    }

    /// <summary>Serilog's line as the console got it before: its text, encoded as UTF-8.</summary>
    internal static string SerilogLine(LogEvent logEvent)
    {
        var text = new StringWriter();
        Serilog.Format(logEvent, text);
        return Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text.ToString()));
    }

    private static JsonDocument ParseOrFail(string ours, string theirs)
    {
        try
        {
            return JsonDocument.Parse(ours);
        }
        catch (JsonException ex)
        {
            throw new Xunit.Sdk.XunitException($"not JSON ({ex.Message}):\n ours:    {ours}\n Serilog: {theirs}");
        }
    }

    internal static List<string> Names(JsonElement element) => [.. element.EnumerateObject().Select(p => p.Name)];

    private sealed class Unprintable
    {
        public override string ToString() => throw new InvalidOperationException("cannot be printed");
    }
}
