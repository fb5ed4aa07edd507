using System.Globalization;
using System.Text;
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
        (_literals, _holes) = Parse(template);
        _encodedLiterals = [.. _literals.Select(l => Encoding.UTF8.GetBytes(JsonLines.Options.Encoder!.Encode(l)))];
        // Serilog's compact JSON identifies a template by this hash; the same template keeps the same @i here.
        var templateHash = EventIdHash.Compute(template).ToString("x8", CultureInfo.InvariantCulture);
        JsonTemplateHash = Encoding.UTF8.GetBytes($",\"@i\":\"{templateHash}\"");
        JsonEventIdAndCategory = Encoding.UTF8.GetBytes(
            $",\"EventId\":{{\"Id\":{eventId.Id.ToString(CultureInfo.InvariantCulture)},\"Name\":\"{JsonLines.Options.Encoder!.Encode(eventId.Name)}\"}}" +
            $",\"SourceContext\":\"{JsonLines.Options.Encoder!.Encode(category)}\"");
    }

    public string Category { get; }

    public EventId EventId { get; }

    public string Template { get; }

    /// <summary>The holes in template order.</summary>
    public IReadOnlyList<LogHole> Holes => _holes;

    // Arrays, not the lists above: in the Native AOT build each access through an interface is a dispatch stub.
    private readonly LogHole[] _holes;

    /// <summary>The text before each hole, and after the last: one more than <see cref="Holes"/>.</summary>
    private readonly string[] _literals;

    /// <summary>The literals as they appear inside a JSON string: escaped, in UTF-8.</summary>
    private readonly byte[][] _encodedLiterals;

    /// <summary>The event's <c>@i</c> field, comma first, in UTF-8.</summary>
    internal byte[] JsonTemplateHash { get; }

    /// <summary>The event's <c>EventId</c> and <c>SourceContext</c> fields, comma first, in UTF-8: the same for every event.</summary>
    internal byte[] JsonEventIdAndCategory { get; }

    /// <summary>The message as <see cref="Render(in LogValues)"/> renders it, written as the inside of a JSON string (the console's <c>@m</c>).</summary>
    internal void RenderJson(in LogValues values, JsonLineBuffer line)
    {
        for (var i = 0; i < _holes.Length; i++)
        {
            line.AppendRaw(_encodedLiterals[i]);
            values[i].RenderJson(_holes[i].Format, line);
        }

        line.AppendRaw(_encodedLiterals[^1]);
    }

    /// <summary>Each hole as a property of the line (<c>,"Name":value</c>), in template order.</summary>
    internal void WriteProperties(in LogValues values, JsonLineBuffer line)
    {
        for (var i = 0; i < _holes.Length; i++)
        {
            line.AppendRaw(_holes[i].JsonName);
            values[i].WriteJson(line);
        }
    }

    /// <summary>
    /// The message as Serilog renders it — strings in double quotes (inner quotes escaped), null as <c>null</c> — for the
    /// <see cref="ILoggerProvider"/>s that ask for it; the console's line is rendered by <see cref="RenderJson"/>.
    /// </summary>
    internal string Render(in LogValues values)
    {
        var text = new StringBuilder();
        for (var i = 0; i < _holes.Length; i++)
        {
            text.Append(_literals[i]);
            values[i].Render(_holes[i].Format, text);
        }

        return text.Append(_literals[^1]).ToString();
    }

    /// <summary>
    /// A custom number format of digits' placeholders (<c>0.0</c>, <c>#,##0</c>) or a standard one (<c>F1</c>, <c>x8</c>):
    /// what renders a number as Serilog would, and never a character JSON would have to escape.
    /// </summary>
    private static bool IsNumberFormat(string format) =>
        (format.Length > 0 && format.All(c => c is '0' or '#' or '.' or ','))
        || (format.Length is >= 1 and <= 3 && "CDEFGNPRXcdefgnprx".Contains(format[0]) && format[1..].All(char.IsAsciiDigit));

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
            var format = colon < 0 ? null : hole[(colon + 1)..];
            if (name.Length == 0 || !char.IsAsciiLetter(name[0]) || !name.All(char.IsAsciiLetterOrDigit) || (format is not null && !IsNumberFormat(format)))
            {
                throw new ArgumentException($"'{template}' has a hole at {open} that is not {{Name}} or {{Name:number format}}", nameof(template));
            }

            literals.Add(template[start..open]);
            holes.Add(new LogHole(name, format));
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

    /// <summary>The property's name in the line, comma first: <c>,"Name":</c> (unescaped: <see cref="LogShape"/> takes only names of ASCII letters and digits).</summary>
    internal byte[] JsonName { get; } = Encoding.UTF8.GetBytes($",\"{name}\":");
}
