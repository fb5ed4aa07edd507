using System.Globalization;
using System.Runtime.CompilerServices;

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

    /// <summary>The value as a JSON value, as Serilog's JSON writes it.</summary>
    internal void WriteJson(JsonLineBuffer line)
    {
        switch (_kind)
        {
            case Kind.Text:
                line.AppendString(_text!);
                break;
            case Kind.Integer:
                line.AppendNumber((int)_number, null);
                break;
            case Kind.Number when double.IsFinite(_number):
                line.AppendNumber(_number, null);
                break;
            case Kind.Number:
                // As Serilog's JSON writes a number JSON cannot hold: its text, in a string.
                line.AppendString(_number.ToString(CultureInfo.InvariantCulture));
                break;
            default:
                line.AppendRaw("null"u8);
                break;
        }
    }

    internal void RenderJson(string? format, JsonLineBuffer line)
    {
        switch (_kind)
        {
            case Kind.Text:
                line.AppendQuoted(_text!);
                break;
            case Kind.Integer:
                line.AppendNumber((int)_number, format);
                break;
            case Kind.Number:
                line.AppendNumber(_number, format);
                break;
            default:
                line.AppendRaw("null"u8);
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
