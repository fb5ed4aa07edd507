using System.Text;

namespace MsiProxy.ImdsEmulator.Protocol;

/// <summary>
/// A strictly parsed query string: '+' and %xx decoded, malformed escapes and duplicate names rejected
/// (IMDS rejects duplicate query parameter names).
/// </summary>
internal sealed class ImdsQuery
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Dictionary<string, string> _values;

    private ImdsQuery(Dictionary<string, string> values) => _values = values;

    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>The decoded value, or null when absent.</summary>
    public string? Get(string name) => _values.TryGetValue(name, out var value) ? value : null;

    public bool Has(string name) => _values.ContainsKey(name);

    /// <param name="raw">The raw query string, with or without the leading '?'.</param>
    public static bool TryParse(string? raw, out ImdsQuery query, out string error)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        query = new ImdsQuery(values);
        error = string.Empty;
        if (string.IsNullOrEmpty(raw))
        {
            return true;
        }

        var text = raw[0] == '?' ? raw[1..] : raw;
        foreach (var pair in text.Split('&'))
        {
            if (pair.Length == 0)
            {
                continue;
            }

            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var rawName = eq < 0 ? pair : pair[..eq];
            var rawValue = eq < 0 ? string.Empty : pair[(eq + 1)..];
            if (!TryDecode(rawName, out var name) || !TryDecode(rawValue, out var value))
            {
                error = "Malformed query string: invalid percent-encoding";
                return false;
            }

            if (!values.TryAdd(name, value))
            {
                error = $"Duplicate query parameter '{name}'";
                return false;
            }
        }

        return true;
    }

    private static bool TryDecode(string text, out string decoded)
    {
        decoded = text;
        if (text.AsSpan().IndexOfAny('%', '+') < 0)
        {
            return true;
        }

        var bytes = new List<byte>(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '+')
            {
                bytes.Add((byte)' ');
            }
            else if (c == '%')
            {
                if (i + 2 >= text.Length || !IsHex(text[i + 1]) || !IsHex(text[i + 2]))
                {
                    return false;
                }

                bytes.Add(Convert.ToByte(text.Substring(i + 1, 2), 16));
                i += 2;
            }
            else if (c > 0x7F)
            {
                return false;
            }
            else
            {
                bytes.Add((byte)c);
            }
        }

        try
        {
            decoded = StrictUtf8.GetString(bytes.ToArray());
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);
}
