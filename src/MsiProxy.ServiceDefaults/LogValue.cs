using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace MsiProxy.ServiceDefaults;

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

    internal void Render(string? format, System.Text.StringBuilder text)
    {
        _ = _kind switch
        {
            Kind.Text => text.Append('"').Append(_text!.Replace("\"", "\\\"", StringComparison.Ordinal)).Append('"'),
            Kind.Integer => text.Append(((int)_number).ToString(format, CultureInfo.InvariantCulture)),
            Kind.Number => text.Append(_number.ToString(format, CultureInfo.InvariantCulture)),
            _ => text.Append("null"),
        };
    }
}

/// <summary>The values of a <see cref="LogShape"/>'s holes, in template order, held inline (no allocation).</summary>
[InlineArray(Length)]
public struct LogValues
{
    internal const int Length = 12;

    private LogValue _first;
}
