using System.Text;

namespace MsiProxy.Requests;

/// <summary>
/// Strict percent-decoding (UTF-8): a stray '%', a non-ASCII character on the wire or an invalid or overlong UTF-8
/// sequence is an error, never a literal. Decoding happens once; callers refuse a result that still needs decoding.
/// </summary>
internal static class PercentDecoding
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static bool TryDecode(ReadOnlySpan<char> input, bool plusIsSpace, out string decoded)
    {
        decoded = "";
        if (input.IndexOfAny('%', '+') < 0)
        {
            if (input.ContainsAnyExceptInRange((char)0x20, (char)0x7E))
            {
                return false;
            }

            decoded = input.ToString();
            return true;
        }

        var bytes = input.Length <= 256 ? stackalloc byte[input.Length] : new byte[input.Length];
        var count = 0;
        for (var i = 0; i < input.Length; i++)
        {
            var c = input[i];
            if (c == '%')
            {
                if (i + 2 >= input.Length || !char.IsAsciiHexDigit(input[i + 1]) || !char.IsAsciiHexDigit(input[i + 2]))
                {
                    return false;
                }

                bytes[count++] = (byte)((HexValue(input[i + 1]) << 4) | HexValue(input[i + 2]));
                i += 2;
            }
            else if (c is < (char)0x20 or > (char)0x7E)
            {
                return false;
            }
            else
            {
                bytes[count++] = c == '+' && plusIsSpace ? (byte)' ' : (byte)c;
            }
        }

        try
        {
            decoded = StrictUtf8.GetString(bytes[..count]);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
