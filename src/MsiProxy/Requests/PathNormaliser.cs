using System.Text;

namespace MsiProxy.Requests;

/// <summary>
/// Turns a raw request target's path into the one canonical form the allow-list is checked against and that is
/// forwarded. Anything that could make the two differ — encoded slashes or backslashes, dot segments that climb
/// above the root, invalid escapes — is refused rather than guessed at.
/// </summary>
public static class PathNormaliser
{
    public static bool TryNormalise(ReadOnlySpan<char> rawPath, out string normalised, out string? error)
    {
        normalised = "/";
        error = null;
        if (rawPath.IsEmpty || rawPath[0] != '/')
        {
            error = "the request target must be an absolute path";
            return false;
        }

        // What every SDK sends is already canonical; answering it without decoding or splitting keeps the token path
        // allocation-free (the general path below allocated ~400 B per request: decoded copy, segment list, join).
        if (IsPlainCanonical(rawPath, out var canonical))
        {
            normalised = canonical.SequenceEqual(ImdsPaths.Token) ? ImdsPaths.Token : canonical.ToString();
            return true;
        }

        if (rawPath.Contains('\\') || rawPath.Contains("%5c", StringComparison.OrdinalIgnoreCase)
            || rawPath.Contains("%2f", StringComparison.OrdinalIgnoreCase) || rawPath.Contains("%00", StringComparison.Ordinal))
        {
            error = "encoded slashes, backslashes and NUL are not allowed in the path";
            return false;
        }

        if (!PercentDecoding.TryDecode(rawPath, plusIsSpace: false, out var decoded))
        {
            error = "the path has malformed percent-encoding";
            return false;
        }

        var segments = new List<string>();
        foreach (var segment in decoded.Split('/'))
        {
            switch (segment)
            {
                case "" or ".":
                    continue;
                case "..":
                    if (segments.Count == 0)
                    {
                        error = "the path climbs above the root";
                        return false;
                    }

                    segments.RemoveAt(segments.Count - 1);
                    continue;
                default:
                    if (segment.Any(char.IsControl))
                    {
                        error = "the path contains control characters";
                        return false;
                    }

                    segments.Add(segment);
                    continue;
            }
        }

        normalised = "/" + string.Join('/', segments);
        return true;
    }

    /// <summary>
    /// True when the general algorithm would return <paramref name="rawPath"/> itself (less one trailing slash): printable
    /// ASCII only, no escapes, backslashes or '+', no empty, "." or ".." segments. Anything else takes the general path.
    /// </summary>
    private static bool IsPlainCanonical(ReadOnlySpan<char> rawPath, out ReadOnlySpan<char> canonical)
    {
        canonical = rawPath.Length > 1 && rawPath[^1] == '/' ? rawPath[..^1] : rawPath;
        var segmentStart = 1;
        for (var i = 1; i <= canonical.Length; i++)
        {
            if (i < canonical.Length && canonical[i] != '/')
            {
                var c = canonical[i];
                if (c <= ' ' || c >= 0x7F || c is '%' or '\\' or '+')
                {
                    return false;
                }

                continue;
            }

            var segment = canonical[segmentStart..i];
            if ((segment.IsEmpty && canonical.Length > 1) || segment is "." or "..")
            {
                return false;
            }

            segmentStart = i + 1;
        }

        return true;
    }
}

/// <summary>Strict percent-decoding (UTF-8): a stray '%' or an invalid UTF-8 sequence is an error, not a literal.</summary>
public static class PercentDecoding
{
    public static bool TryDecode(ReadOnlySpan<char> input, bool plusIsSpace, out string decoded)
    {
        decoded = "";
        if (input.IndexOfAny('%', '+') < 0)
        {
            decoded = input.ToString();
            return true;
        }

        var bytes = new byte[input.Length];
        var count = 0;
        for (var i = 0; i < input.Length; i++)
        {
            var c = input[i];
            if (c == '%')
            {
                if (i + 2 >= input.Length || !IsHex(input[i + 1]) || !IsHex(input[i + 2]))
                {
                    return false;
                }

                bytes[count++] = (byte)((HexValue(input[i + 1]) << 4) | HexValue(input[i + 2]));
                i += 2;
            }
            else if (c == '+' && plusIsSpace)
            {
                bytes[count++] = (byte)' ';
            }
            else if (c > 0x7F)
            {
                return false;
            }
            else
            {
                bytes[count++] = (byte)c;
            }
        }

        try
        {
            decoded = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes, 0, count);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
