using System.Buffers;
using System.Globalization;

namespace MsiProxy.ServiceDefaults;

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
            ArrayPool<char>.Shared.Return(rented);
        }
    }

    private void Grow(int needed)
    {
        var bigger = ArrayPool<char>.Shared.Rent(Math.Max(_chars.Length * 2, _length + needed));
        _chars[.._length].CopyTo(bigger);
        Dispose();
        _rented = bigger;
        _chars = bigger;
    }
}
