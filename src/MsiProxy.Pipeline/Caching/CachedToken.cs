using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;

namespace MsiProxy.Caching;

/// <summary>
/// A token response as the upstream sent it, kept as bytes. The body is split around the value of
/// <c>expires_in</c> so that a hit can write the remaining lifetime without parsing or re-serialising anything.
/// </summary>
internal sealed class CachedToken
{
    private readonly byte[] _body;
    private readonly int _expiresInStart;
    private readonly int _expiresInLength;

    private readonly int _accessTokenStart;
    private readonly int _accessTokenLength;
    private byte[]? _accessTokenSha256;

    private CachedToken(byte[] body, int expiresInStart, int expiresInLength, bool expiresInQuoted,
        DateTimeOffset expiresOn, DateTimeOffset fetchedAt, DateTimeOffset refreshAt, int accessTokenStart, int accessTokenLength)
    {
        _body = body;
        _accessTokenStart = accessTokenStart;
        _accessTokenLength = accessTokenLength;
        _expiresInStart = expiresInStart;
        _expiresInLength = expiresInLength;
        ExpiresInQuoted = expiresInQuoted;
        ExpiresOn = expiresOn;
        FetchedAt = fetchedAt;
        RefreshAt = refreshAt;
    }

    public DateTimeOffset ExpiresOn { get; }
    public DateTimeOffset FetchedAt { get; }

    /// <summary>From here on a hit starts a background refresh.</summary>
    public DateTimeOffset RefreshAt { get; }

    private bool ExpiresInQuoted { get; }

    /// <summary>The body with <c>expires_in</c> recomputed for <paramref name="now"/>; other fields as sent.</summary>
    public int WriteBody(DateTimeOffset now, Span<byte> destination)
    {
        if (_expiresInStart < 0)
        {
            _body.CopyTo(destination);
            return _body.Length;
        }

        var seconds = Math.Max(0L, (long)(ExpiresOn - now).TotalSeconds);
        var written = 0;
        _body.AsSpan(0, _expiresInStart).CopyTo(destination);
        written += _expiresInStart;
        if (ExpiresInQuoted)
        {
            destination[written++] = (byte)'"';
        }

        Utf8Formatter.TryFormat(seconds, destination[written..], out var digits);
        written += digits;
        if (ExpiresInQuoted)
        {
            destination[written++] = (byte)'"';
        }

        var tailStart = _expiresInStart + _expiresInLength;
        _body.AsSpan(tailStart).CopyTo(destination[written..]);
        return written + _body.Length - tailStart;
    }

    /// <summary>
    /// True when <paramref name="sha256"/> is the SHA-256 of this access token — MSAL's <c>token_sha256_to_refresh</c>:
    /// the client says the token it holds was revoked.
    /// </summary>
    public bool HasSha256(ReadOnlySpan<byte> sha256) => CryptographicOperations.FixedTimeEquals(_accessTokenSha256 ??= AccessTokenSha256(), sha256);

    /// <summary>
    /// Hashed when a client first asks, not when the token is cached: most tokens are never revoked, and the first
    /// SHA-256 loads OpenSSL (libssl and libcrypto, ~3.5 MB resident) into a process that may otherwise never need it.
    /// </summary>
    private byte[] AccessTokenSha256()
    {
        var reader = new Utf8JsonReader(_body.AsSpan(_accessTokenStart, _accessTokenLength));
        reader.Read();
        return reader.ValueIsEscaped ? SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(reader.GetString()!)) : SHA256.HashData(reader.ValueSpan);
    }

    private byte[]? _appServiceBody;

    /// <summary>
    /// The token in the App Service protocol's shape (api-version 2019-08-01): <c>access_token</c>, <c>expires_on</c>
    /// (epoch seconds as a string — msal-python does <c>int(expires_on)</c>), <c>resource</c>, <c>token_type</c> and
    /// <c>client_id</c>, as the upstream sent them. It has no countdown, so it is built once, on first use.
    /// </summary>
    public ReadOnlyMemory<byte> AppServiceBody => _appServiceBody ??= BuildAppServiceBody();

    private byte[] BuildAppServiceBody()
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(_body);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString()!;
            reader.Read();
            if (name is "access_token" or "resource" or "token_type" or "client_id" && reader.TokenType == JsonTokenType.String)
            {
                fields[name] = reader.GetString()!;
            }

            reader.TrySkip();
        }

        using var buffer = new MemoryStream(_body.Length);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("access_token", fields["access_token"]);
            writer.WriteString("expires_on", ExpiresOn.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture));
            foreach (var name in (ReadOnlySpan<string>)["resource", "token_type", "client_id"])
            {
                if (fields.TryGetValue(name, out var value))
                {
                    writer.WriteString(name, value);
                }
            }

            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    /// <summary>Enough room for any body <see cref="WriteBody"/> produces.</summary>
    public int MaxBodyLength => _body.Length + 24;

    /// <summary>
    /// Reads the fields the cache needs from an upstream 200 body. Fails (and the response is passed through uncached)
    /// when the body is not a token response with a usable expiry.
    /// </summary>
    public static bool TryCreate(byte[] body, DateTimeOffset now, double refreshAfter, out CachedToken token, out string? error)
    {
        token = null!;
        error = null;
        long? expiresOn = null;
        long? expiresIn = null;
        int expiresInStart = -1, expiresInLength = 0;
        var quoted = false;
        int accessTokenStart = -1, accessTokenLength = 0;
        try
        {
            var reader = new Utf8JsonReader(body);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = "not a JSON object";
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "access_token" when reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0:
                        // The string token, quotes included: AccessTokenSha256 reads it again if a client asks.
                        accessTokenStart = (int)reader.TokenStartIndex;
                        accessTokenLength = reader.ValueSpan.Length + 2;
                        break;
                    case "expires_on":
                        expiresOn = ReadSeconds(ref reader);
                        break;
                    case "expires_in":
                        if (reader.ValueIsEscaped)
                        {
                            error = "escaped expires_in";
                            return false;
                        }

                        expiresIn = ReadSeconds(ref reader);
                        quoted = reader.TokenType == JsonTokenType.String;
                        // The span to replace covers the value including its quotes; WriteBody puts them back.
                        expiresInStart = (int)reader.TokenStartIndex;
                        expiresInLength = reader.ValueSpan.Length + (quoted ? 2 : 0);
                        break;
                }

                reader.TrySkip();
            }
        }
        catch (JsonException)
        {
            error = "malformed JSON";
            return false;
        }

        if (accessTokenStart < 0)
        {
            error = "no access_token";
            return false;
        }

        // IMDS sends both; expires_on is authoritative (expires_in counts down on IMDS's own cache hits).
        var expiry = expiresOn is { } on ? DateTimeOffset.FromUnixTimeSeconds(on)
            : expiresIn is { } inSeconds ? now.AddSeconds(inSeconds) : (DateTimeOffset?)null;
        if (expiry is not { } expires || expires <= now)
        {
            error = "no usable expires_on";
            return false;
        }

        var refreshAt = now + ((expires - now) * Math.Clamp(refreshAfter, 0, 1));
        token = new CachedToken(body, expiresIn is null ? -1 : expiresInStart, expiresInLength, quoted, expires, now, refreshAt, accessTokenStart, accessTokenLength);
        return true;
    }

    private static long? ReadSeconds(ref Utf8JsonReader reader)
    {
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var number))
        {
            return number;
        }

        if (reader.TokenType == JsonTokenType.String
            && long.TryParse(reader.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var text))
        {
            return text;
        }

        return null;
    }
}
