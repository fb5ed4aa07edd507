using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Serilog.Formatting.Compact;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// An event of fixed shape, logged once per request (<see cref="ShapedLogs"/>): its category, event id and message
/// template, parsed once. The template is Serilog's syntax restricted to what such an event needs: named holes
/// (<c>{Name}</c>, or <c>{Name:format}</c> for a number), no positional holes, no <c>{{</c> escapes, no <c>@</c> or <c>$</c>.
/// </summary>
public sealed class LogShape
{
    /// <summary>The most holes a template may have (<see cref="LogValues"/>' length).</summary>
    public const int MaxHoles = LogValues.Length;

    public LogShape(string category, EventId eventId, string template)
    {
        ArgumentException.ThrowIfNullOrEmpty(category);
        ArgumentException.ThrowIfNullOrEmpty(eventId.Name, nameof(eventId));
        ArgumentException.ThrowIfNullOrEmpty(template);
        Category = category;
        EventId = eventId;
        Template = template;
        (Literals, Holes) = Parse(template);
        EncodedLiterals = [.. Literals.Select(l => Encoding.UTF8.GetBytes(JsonLines.Options.Encoder!.Encode(l)))];
        EncodedCategory = JsonEncodedText.Encode(category);
        EncodedEventName = JsonEncodedText.Encode(eventId.Name);
        // Serilog's compact JSON identifies a template by this hash; the same template keeps the same @i here.
        TemplateHash = EventIdHash.Compute(template).ToString("x8", CultureInfo.InvariantCulture);
    }

    public string Category { get; }

    public EventId EventId { get; }

    public string Template { get; }

    /// <summary>The holes in template order, each with its property name already encoded for JSON.</summary>
    public IReadOnlyList<LogHole> Holes { get; }

    /// <summary>The text before each hole, and after the last: one more than <see cref="Holes"/>.</summary>
    internal IReadOnlyList<string> Literals { get; }

    /// <summary><see cref="Literals"/> as they appear inside a JSON string: escaped, in UTF-8.</summary>
    internal IReadOnlyList<byte[]> EncodedLiterals { get; }

    internal JsonEncodedText EncodedCategory { get; }

    internal JsonEncodedText EncodedEventName { get; }

    /// <summary>The event's <c>@i</c>.</summary>
    internal string TemplateHash { get; }

    /// <summary>The message as Serilog renders it: strings in double quotes (inner quotes escaped), null as <c>null</c>.</summary>
    internal void Render(in LogValues values, ref ValueStringBuilder text)
    {
        for (var i = 0; i < Holes.Count; i++)
        {
            text.Append(Literals[i]);
            values[i].Render(Holes[i].Format, ref text);
        }

        text.Append(Literals[^1]);
    }

    /// <summary>The message as <see cref="Render(in LogValues, ref ValueStringBuilder)"/> renders it, written as the inside of a JSON string.</summary>
    internal void RenderJson(in LogValues values, JsonMessage message)
    {
        for (var i = 0; i < Holes.Count; i++)
        {
            message.AppendRaw(EncodedLiterals[i]);
            values[i].RenderJson(Holes[i].Format, message);
        }

        message.AppendRaw(EncodedLiterals[^1]);
    }

    /// <summary>The message rendered to a string (for <see cref="ILoggerProvider"/>s that ask for it).</summary>
    internal string Render(in LogValues values)
    {
        var text = new ValueStringBuilder(stackalloc char[256]);
        Render(values, ref text);
        var message = text.ToString();
        text.Dispose();
        return message;
    }

    private static (string[] Literals, LogHole[] Holes) Parse(string template)
    {
        var literals = new List<string>();
        var holes = new List<LogHole>();
        var start = 0;
        while (true)
        {
            var open = template.IndexOfAny(['{', '}'], start);
            if (open < 0)
            {
                literals.Add(template[start..]);
                break;
            }

            var close = template[open] == '{' ? template.IndexOf('}', open) : -1;
            var hole = close < 0 ? "" : template[(open + 1)..close];
            var colon = hole.IndexOf(':');
            var name = colon < 0 ? hole : hole[..colon];
            if (name.Length == 0 || !char.IsAsciiLetter(name[0]) || !name.All(char.IsAsciiLetterOrDigit))
            {
                throw new ArgumentException($"'{template}' has a hole at {open} that is not {{Name}} or {{Name:format}}", nameof(template));
            }

            literals.Add(template[start..open]);
            holes.Add(new LogHole(name, colon < 0 ? null : hole[(colon + 1)..]));
            start = close + 1;
        }

        if (holes.Count > MaxHoles || holes.Select(h => h.Name).Distinct(StringComparer.Ordinal).Count() != holes.Count)
        {
            throw new ArgumentException($"'{template}' must have at most {MaxHoles} holes, each named once", nameof(template));
        }

        return ([.. literals], [.. holes]);
    }
}

/// <summary>One hole of a <see cref="LogShape"/>'s template: the property it names, and the number format it asks for.</summary>
public sealed class LogHole(string name, string? format)
{
    public string Name { get; } = name;

    public string? Format { get; } = format;

    internal JsonEncodedText EncodedName { get; } = JsonEncodedText.Encode(name);
}

/// <summary>The value of one hole: a string (or null), a whole number or a number.</summary>
public readonly struct LogValue
{
    private readonly string? _text;
    private readonly double _number;
    private readonly Kind _kind;

    private LogValue(string? text, double number, Kind kind) => (_text, _number, _kind) = (text, number, kind);

    private enum Kind : byte
    {
        Null,
        Text,
        Integer,
        Number,
    }

    public static implicit operator LogValue(string? text) => new(text, 0, text is null ? Kind.Null : Kind.Text);

    public static implicit operator LogValue(int number) => new(null, number, Kind.Integer);

    public static implicit operator LogValue(double number) => new(null, number, Kind.Number);

    /// <summary>The value as an object, as <see cref="ILoggerProvider"/>s receive structured state.</summary>
    public object? Boxed => _kind switch
    {
        Kind.Text => _text,
        Kind.Integer => (int)_number,
        Kind.Number => _number,
        _ => null,
    };

    internal void WriteTo(Utf8JsonWriter json, bool wellFormed)
    {
        switch (_kind)
        {
            case Kind.Text:
                json.WriteStringValue(JsonLines.WellFormed(_text, wellFormed));
                break;
            case Kind.Integer:
                json.WriteNumberValue((int)_number);
                break;
            case Kind.Number when double.IsFinite(_number):
                json.WriteNumberValue(_number);
                break;
            case Kind.Number:
                // As Serilog's JSON writes a number JSON cannot hold: its text, in a string.
                json.WriteStringValue(_number.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                json.WriteNullValue();
                break;
        }
    }

    internal void RenderJson(string? format, JsonMessage message)
    {
        switch (_kind)
        {
            case Kind.Text:
                message.AppendQuoted(_text!);
                break;
            case Kind.Integer:
                message.AppendNumber((int)_number, format);
                break;
            case Kind.Number:
                message.AppendNumber(_number, format);
                break;
            default:
                message.AppendRaw("null"u8);
                break;
        }
    }

    internal void Render(string? format, ref ValueStringBuilder text)
    {
        switch (_kind)
        {
            case Kind.Text:
                text.Append('"');
                text.AppendEscapingQuotes(_text!);
                text.Append('"');
                break;
            case Kind.Integer:
                text.AppendFormatted((int)_number, format);
                break;
            case Kind.Number:
                text.AppendFormatted(_number, format);
                break;
            default:
                text.Append("null");
                break;
        }
    }
}

/// <summary>The values of a <see cref="LogShape"/>'s holes, in template order, held inline (no allocation).</summary>
[InlineArray(Length)]
public struct LogValues
{
    internal const int Length = 12;

    private LogValue _first;
}

/// <summary>A stack-first character buffer for rendering a message, growing into pooled arrays only for a long one.</summary>
internal ref struct ValueStringBuilder(Span<char> initial)
{
    private char[]? _rented;
    private Span<char> _chars = initial;
    private int _length;

    public readonly ReadOnlySpan<char> Written => _chars[.._length];

    public void Append(char c)
    {
        if (_length == _chars.Length)
        {
            Grow(1);
        }

        _chars[_length++] = c;
    }

    public void Append(ReadOnlySpan<char> text)
    {
        if (_length + text.Length > _chars.Length)
        {
            Grow(text.Length);
        }

        text.CopyTo(_chars[_length..]);
        _length += text.Length;
    }

    /// <summary>Serilog's rendering of a string inside quotes: each <c>"</c> becomes <c>\"</c>.</summary>
    public void AppendEscapingQuotes(string text)
    {
        var rest = text.AsSpan();
        for (var quote = rest.IndexOf('"'); quote >= 0; quote = rest.IndexOf('"'))
        {
            Append(rest[..quote]);
            Append("\\\"");
            rest = rest[(quote + 1)..];
        }

        Append(rest);
    }

    public void AppendFormatted<T>(T value, string? format)
        where T : ISpanFormattable
    {
        int written;
        while (!value.TryFormat(_chars[_length..], out written, format, CultureInfo.InvariantCulture))
        {
            Grow(64);
        }

        _length += written;
    }

    public override readonly string ToString() => new(Written);

    public void Dispose()
    {
        if (_rented is { } rented)
        {
            _rented = null;
            System.Buffers.ArrayPool<char>.Shared.Return(rented);
        }
    }

    private void Grow(int needed)
    {
        var bigger = System.Buffers.ArrayPool<char>.Shared.Rent(Math.Max(_chars.Length * 2, _length + needed));
        _chars[.._length].CopyTo(bigger);
        Dispose();
        _rented = bigger;
        _chars = bigger;
    }
}
