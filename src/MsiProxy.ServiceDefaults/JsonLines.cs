using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Serilog.Debugging;
using Serilog.Events;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Json;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// One log event as one line of compact JSON (CLEF): the document Serilog's <see cref="RenderedCompactJsonFormatter"/>
/// writes — <c>@t</c>, the rendered <c>@m</c>, <c>@i</c>, <c>@l</c>, <c>@x</c>, <c>@tr</c>, <c>@sp</c>, then the
/// properties — written straight to UTF-8 by <see cref="Utf8JsonWriter"/> (a shaped event's by <see cref="JsonLineBuffer"/>).
/// Why not that formatter itself: through a <see cref="TextWriter"/> it escapes strings a character at a time and then
/// encodes them again, and with the request line and the audit event on, that was most of the writer threads' CPU on
/// the cached-hit path (docs/benchmarks.md).
/// </summary>
/// <remarks>
/// Strings, numbers, booleans, nulls and structures are written here; any other value (a date, a dictionary…) goes
/// through Serilog's own <see cref="JsonValueFormatter"/>, and an event this cannot write is written whole by
/// <see cref="RenderedCompactJsonFormatter"/>, so no event is lost to a difference between the two. Escaping may differ
/// where JSON leaves it open (a character written as itself by one, as <c>\uXXXX</c> by the other): the JSON is the
/// same. Not thread-safe: each writer thread has its own.
/// </remarks>
internal sealed class JsonLines : IDisposable
{
    private const int MaxCachedTemplates = 1024;

    internal static readonly JsonWriterOptions Options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = true };
    private static readonly JsonValueFormatter Values = new(typeTagName: "$type");
    private static readonly RenderedCompactJsonFormatter Whole = new();
    private static readonly byte[] NewLine = Encoding.UTF8.GetBytes(Environment.NewLine);

    private readonly StringWriter _text = new();
    private readonly Dictionary<MessageTemplate, string> _eventIds = new(ReferenceEqualityComparer.Instance);
    private readonly JsonLineBuffer _line = new();
    private char[] _chars = new char[1024];
    private Utf8JsonWriter? _json;

    /// <summary>Appends the event's line, newline included, to <paramref name="output"/>.</summary>
    public void Write(LogEvent logEvent, MemoryStream output)
    {
        var start = output.Length;
        try
        {
            WriteJson(logEvent, output);
            output.Write(NewLine);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _json = null;
            output.SetLength(start);
            WriteWhole(logEvent, output, ex);
        }
    }

    /// <summary>
    /// Appends a <see cref="ShapedLog"/> event's line: the document Serilog's bridge and <see cref="Write(LogEvent, MemoryStream)"/>
    /// would write for the same event (its holes, <c>EventId</c>, <c>SourceContext</c>, ASP.NET Core's request scope and
    /// the configured properties), from typed values rather than a <see cref="LogEvent"/>. The shape's names and fixed
    /// fields are UTF-8 made once (<see cref="LogShape"/>, <see cref="ConfiguredProperty"/>); only the values are written
    /// per event. Why not <see cref="Utf8JsonWriter"/>, as before: through it the two lines of a request took 15.6 % of
    /// the Native AOT build's samples as shipped, written this way 10.5 % (docs/benchmarks.md, "Logging off the request
    /// thread").
    /// </summary>
    internal void Write(in ShapedLine line, MemoryStream output)
    {
        var json = _line;
        json.Clear();
        json.AppendRaw("{\"@t\":\""u8);
        json.AppendTimestamp(line.Timestamp);
        // @m rendered straight into its escaped form: as one string, Serilog's quotes around each value would send it
        // all down the slow escaping path.
        json.AppendRaw("\",\"@m\":\""u8);
        var shape = line.Shape;
        shape.RenderJson(line.Values, json);
        json.AppendRaw("\""u8);
        json.AppendRaw(shape.JsonTemplateHash);
        if (System.Diagnostics.Activity.Current is { } activity)
        {
            // The activity keeps its ids' hex strings: nothing is allocated here.
            json.AppendRaw(",\"@tr\":"u8);
            json.AppendString(activity.TraceId.ToHexString());
            json.AppendRaw(",\"@sp\":"u8);
            json.AppendString(activity.SpanId.ToHexString());
        }

        shape.WriteProperties(line.Values, json);
        json.AppendRaw(shape.JsonEventIdAndCategory);
        if (line.Context is { } context)
        {
            // ASP.NET Core's request scope, as Serilog's bridge adds it to every event logged during a request.
            json.AppendRaw(",\"RequestId\":"u8);
            json.AppendString(context.TraceIdentifier);
            json.AppendRaw(",\"RequestPath\":"u8);
            json.AppendString(ShapedLine.RequestPath(context));
            json.AppendRaw(",\"ConnectionId\":"u8);
            json.AppendString(context.Connection.Id);
        }

        foreach (var property in line.Properties)
        {
            json.AppendRaw(property.Json);
        }

        json.AppendRaw("}"u8);
        json.AppendRaw(NewLine);
        output.Write(json.Written);
    }

    /// <summary>The text as UTF-8 can carry it, and as the console writes it: a lone surrogate becomes U+FFFD.</summary>
    internal static string? WellFormed(string? text) =>
        text is null ? null : Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));

    /// <summary>Whatever this writer could not write, Serilog's formatter writes as it always did.</summary>
    private void WriteWhole(LogEvent logEvent, MemoryStream output, Exception why)
    {
        _text.GetStringBuilder().Clear();
        try
        {
            Whole.Format(logEvent, _text);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A value whose ToString throws: nothing can write this event, and the writer thread must go on.
            SelfLog.WriteLine("JsonLines could not format an event ({0}), nor could Serilog's formatter: {1}", why.Message, ex);
            return;
        }

        output.Write(Encoding.UTF8.GetBytes(_text.ToString()));
    }

    private void WriteJson(LogEvent logEvent, MemoryStream output)
    {
        var json = _json ??= new Utf8JsonWriter(output, Options);
        json.Reset(output);
        json.WriteStartObject();

        Span<byte> timestamp = stackalloc byte[40];
        logEvent.Timestamp.UtcDateTime.TryFormat(timestamp, out var length, "O");
        json.WriteString("@t"u8, timestamp[..length]);

        _text.GetStringBuilder().Clear();
        logEvent.MessageTemplate.Render(logEvent.Properties, _text);
        json.WriteString("@m"u8, Rendered());
        json.WriteString("@i"u8, EventId(logEvent.MessageTemplate));
        if (logEvent.Level != LogEventLevel.Information)
        {
            json.WriteString("@l"u8, logEvent.Level.ToString());
        }

        if (logEvent.Exception is { } exception)
        {
            json.WriteString("@x"u8, exception.ToString());
        }

        if (logEvent.TraceId is { } traceId)
        {
            json.WriteString("@tr"u8, traceId.ToHexString());
        }

        if (logEvent.SpanId is { } spanId)
        {
            json.WriteString("@sp"u8, spanId.ToHexString());
        }

        foreach (var (name, value) in logEvent.Properties)
        {
            // As Serilog writes them: a property of ours starting with '@' would read as one of the fields above.
            json.WritePropertyName(name.StartsWith('@') ? "@" + name : name);
            WriteValue(json, value);
        }

        json.WriteEndObject();
        json.Flush();
    }

    private void WriteValue(Utf8JsonWriter json, LogEventPropertyValue value)
    {
        switch (value)
        {
            case ScalarValue { Value: null }:
                json.WriteNullValue();
                break;
            case ScalarValue { Value: string text }:
                json.WriteStringValue(text);
                break;
            case ScalarValue { Value: int number }:
                json.WriteNumberValue(number);
                break;
            case ScalarValue { Value: long number }:
                json.WriteNumberValue(number);
                break;
            case ScalarValue { Value: double number } when double.IsFinite(number):
                json.WriteNumberValue(number);
                break;
            case ScalarValue { Value: bool flag }:
                json.WriteBooleanValue(flag);
                break;
            case StructureValue structure:
                json.WriteStartObject();
                foreach (var property in structure.Properties)
                {
                    json.WritePropertyName(property.Name);
                    WriteValue(json, property.Value);
                }

                if (structure.TypeTag is { } tag)
                {
                    json.WriteString("$type"u8, tag);
                }

                json.WriteEndObject();
                break;
            case SequenceValue sequence:
                json.WriteStartArray();
                foreach (var element in sequence.Elements)
                {
                    WriteValue(json, element);
                }

                json.WriteEndArray();
                break;
            default:
                _text.GetStringBuilder().Clear();
                Values.Format(value, _text);
                json.WriteRawValue(Rendered(), skipInputValidation: true);
                break;
        }
    }

    public void Dispose()
    {
        _json?.Dispose();
        _text.Dispose();
    }

    /// <summary>What was just rendered into <see cref="_text"/>, without a string of its own.</summary>
    private ReadOnlySpan<char> Rendered()
    {
        var text = _text.GetStringBuilder();
        if (text.Length > _chars.Length)
        {
            _chars = new char[Math.Max(text.Length, 2 * _chars.Length)];
        }

        text.CopyTo(0, _chars, text.Length);
        return _chars.AsSpan(0, text.Length);
    }

    /// <summary>The template's <c>@i</c>. Templates are few and Serilog's parser hands out the same instance for each.</summary>
    private string EventId(MessageTemplate template)
    {
        if (!_eventIds.TryGetValue(template, out var id))
        {
            id = EventIdHash.Compute(template.Text).ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
            if (_eventIds.Count >= MaxCachedTemplates)
            {
                _eventIds.Clear(); // templates built per event (interpolated messages) must not grow this without bound
            }

            _eventIds[template] = id;
        }

        return id;
    }
}

/// <summary>
/// A shaped event's line being written, in UTF-8: fixed parts copied, values escaped as they are written. A string is
/// copied as it is when it is printable ASCII without a quote or backslash, otherwise transcoded (a lone surrogate
/// becomes U+FFFD, which UTF-8 can carry) and escaped by <see cref="JsonLines.Options"/>' encoder.
/// </summary>
internal sealed class JsonLineBuffer
{
    private const int MaxKeptBytes = 16 * 1024;
    private const int MaxFixedDecimals = 6;
    private const double MaxFixedScaled = 8_589_934_592; // 2^33

    private static readonly double[] PowersOfTen = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

    private static readonly SearchValues<char> PlainJson = SearchValues.Create(
        " !#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    private byte[] _bytes = new byte[1024];
    private byte[] _utf8 = new byte[256];
    private int _length;

    /// <summary>What has been written since <see cref="Clear"/>.</summary>
    public ReadOnlySpan<byte> Written => _bytes.AsSpan(0, _length);

    public void Clear()
    {
        if (_bytes.Length > MaxKeptBytes)
        {
            _bytes = new byte[1024]; // one long line must not stay allocated on every thread that logged one
        }

        _length = 0;
    }

    public void AppendRaw(ReadOnlySpan<byte> bytes)
    {
        Reserve(bytes.Length);
        bytes.CopyTo(_bytes.AsSpan(_length));
        _length += bytes.Length;
    }

    /// <summary>A string as a JSON value: <c>"</c> + the text, escaped + <c>"</c>; null as <c>null</c>.</summary>
    public void AppendString(string? text)
    {
        if (text is null)
        {
            AppendRaw("null"u8);
            return;
        }

        AppendRaw("\""u8);
        AppendEscaped(text);
        AppendRaw("\""u8);
    }

    /// <summary>A time as the round-trip format writes it (<c>2026-12-07T01:24:24.8294023Z</c>).</summary>
    public void AppendTimestamp(DateTime timestamp)
    {
        Reserve(64);
        timestamp.TryFormat(_bytes.AsSpan(_length), out var written, "O", System.Globalization.CultureInfo.InvariantCulture);
        _length += written;
    }

    /// <summary>A string as Serilog renders it in a message, <c>"</c> + the text with each <c>"</c> as <c>\"</c> + <c>"</c>, escaped for JSON.</summary>
    public void AppendQuoted(string text)
    {
        AppendRaw("\\\""u8);
        var rest = text.AsSpan();
        for (var quote = rest.IndexOf('"'); quote >= 0; quote = rest.IndexOf('"'))
        {
            AppendEscaped(rest[..quote]);
            AppendRaw("\\\\\\\""u8);
            rest = rest[(quote + 1)..];
        }

        AppendEscaped(rest);
        AppendRaw("\\\""u8);
    }

    /// <summary>
    /// A number as <c>value.ToString(format, InvariantCulture)</c> writes it. Both events of every request carry a
    /// duration twice, in a <c>0.0</c> hole and as a property, and .NET's formatting of the two was 2.6 % of the process's
    /// samples as shipped: a duration takes <see cref="TryAppendFixed"/>'s or <see cref="TryAppendTenThousandths"/>'s shortcut.
    /// </summary>
    public void AppendNumber(double value, string? format)
    {
        if (format is null ? TryAppendTenThousandths(value) : FixedDecimals(format) is > 0 and var decimals && TryAppendFixed(value, decimals))
        {
            return;
        }

        AppendNumber<double>(value, format);
    }

    public void AppendNumber<T>(T value, string? format)
        where T : IUtf8SpanFormattable
    {
        int written;
        while (!value.TryFormat(_bytes.AsSpan(_length), out written, format, System.Globalization.CultureInfo.InvariantCulture))
        {
            Reserve(Math.Max(_bytes.Length, 64)); // room even in an empty buffer, or this would never end
        }

        _length += written;
    }

    /// <summary>How many decimals a format of the form <c>0.0</c>, <c>0.00</c>… (up to six) asks for; 0 for any other.</summary>
    internal static int FixedDecimals(string? format) =>
        format.AsSpan() is ['0', '.', .. var zeros] && zeros.Length <= MaxFixedDecimals && !zeros.ContainsAnyExcept('0') ? zeros.Length : 0;

    /// <summary>
    /// Writes a non-negative number with <paramref name="decimals"/> decimals, as .NET's custom format does, unless the
    /// scaled number is near a tie or too large, where it leaves the number to .NET (false). .NET rounds the value's first
    /// 15 significant digits half away from zero; below 2^33 after scaling, those digits and the scaled double are within
    /// 10^-4 of the exact value, so away from a tie by 0.01 both round to the same whole number.
    /// </summary>
    private bool TryAppendFixed(double value, int decimals)
    {
        if (!(value >= 0) || double.IsNegative(value))
        {
            return false; // NaN, negative numbers and -0 keep .NET's own rendering (a sign, "NaN")
        }

        var scaled = value * PowersOfTen[decimals];
        if (scaled >= MaxFixedScaled)
        {
            return false;
        }

        var whole = Math.Floor(scaled);
        var fraction = scaled - whole;
        if (Math.Abs(fraction - 0.5) < 0.01)
        {
            return false;
        }

        var digits = (long)whole + (fraction > 0.5 ? 1 : 0);
        var unit = (long)PowersOfTen[decimals];
        AppendNumber(digits / unit, null);
        AppendDecimals(digits % unit, decimals);
        return true;
    }

    /// <summary>
    /// Writes a number of milliseconds made of whole ticks (<see cref="TimeSpan.TotalMilliseconds"/>: n / 10^4) as the
    /// shortest round-trip format does — its decimals, trailing zeros dropped — unless it is not one (false). Checked,
    /// not assumed: n / 10^4 must be this very double, and below 10^11, where doubles lie closer together (under
    /// 2.2·10^-5) than such numbers (10^-4), no shorter decimal reads back as the same double.
    /// </summary>
    private bool TryAppendTenThousandths(double value)
    {
        if (!(value >= 0) || double.IsNegative(value) || value >= 1e11)
        {
            return false;
        }

        var scaled = Math.Round(value * 10_000);
        if (scaled / 10_000 != value)
        {
            return false;
        }

        var tenThousandths = (long)scaled;
        AppendNumber(tenThousandths / 10_000, null);
        var rest = tenThousandths % 10_000;
        var decimals = 4;
        for (; decimals > 0 && rest % 10 == 0; decimals--)
        {
            rest /= 10;
        }

        if (decimals > 0)
        {
            AppendDecimals(rest, decimals);
        }

        return true;
    }

    /// <summary>A decimal point and <paramref name="count"/> digits of <paramref name="digits"/>, zeros in front as needed.</summary>
    private void AppendDecimals(long digits, int count)
    {
        Reserve(1 + count);
        _bytes[_length++] = (byte)'.';
        for (var i = _length + count - 1; i >= _length; i--, digits /= 10)
        {
            _bytes[i] = (byte)('0' + (digits % 10));
        }

        _length += count;
    }

    private void AppendEscaped(ReadOnlySpan<char> text)
    {
        if (!text.ContainsAnyExcept(PlainJson))
        {
            // Printable ASCII without a quote or backslash (the addresses, names, paths and ids of nearly every line):
            // JSON escapes none of it, so it is copied a byte a character, without transcoding and scanning it again.
            Reserve(text.Length);
            Ascii.FromUtf16(text, _bytes.AsSpan(_length), out var copied);
            _length += copied;
            return;
        }

        var utf8Length = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (_utf8.Length < utf8Length)
        {
            _utf8 = new byte[Math.Max(utf8Length, 2 * _utf8.Length)];
        }

        var utf8 = _utf8.AsSpan(0, Encoding.UTF8.GetBytes(text, _utf8));
        Reserve(6 * utf8.Length); // the longest escape, \uXXXX, of one byte
        if (JsonLines.Options.Encoder!.EncodeUtf8(utf8, _bytes.AsSpan(_length), out _, out var written) != OperationStatus.Done)
        {
            throw new InvalidOperationException("a value could not be escaped for JSON");
        }

        _length += written;
    }

    private void Reserve(int more)
    {
        if (_length + more > _bytes.Length)
        {
            Array.Resize(ref _bytes, Math.Max(_length + more, 2 * _bytes.Length));
        }
    }
}
