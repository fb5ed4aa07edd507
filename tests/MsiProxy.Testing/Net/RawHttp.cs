using System.Net;
using System.Net.Sockets;
using System.Text;

namespace MsiProxy.Testing.Net;

/// <summary>An HTTP/1.1 answer read byte for byte, for tests that check exact bodies and headers.</summary>
public sealed record RawHttpResponse(int Status, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string BodyText => Encoding.UTF8.GetString(Body);

    public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
}

/// <summary>
/// Sends a request line exactly as written (HttpClient would normalise malformed escapes and duplicate
/// parameters away) over a plain socket to a loopback endpoint; characters up to U+00FF go out as single bytes, so
/// a test can send raw non-ASCII bytes too.
/// </summary>
public static class RawHttp
{
    /// <param name="from">The loopback address the connection comes from: the caller the proxy sees.</param>
    /// <param name="host">The Host header; by default the server's authority.</param>
    public static async Task<RawHttpResponse> GetAsync(Uri server, string pathAndQuery, IEnumerable<(string Name, string Value)>? headers = null,
        string from = "127.0.0.1", string? host = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        var address = IPAddress.Parse(server.Host);
        if (!IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"RawHttp only talks to loopback, not {server.Host}.", nameof(server));
        }

        var request = new StringBuilder()
            .Append("GET ").Append(pathAndQuery).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(host ?? server.Authority).Append("\r\n")
            .Append("Connection: close\r\n");
        foreach (var (name, value) in headers ?? [])
        {
            request.Append(name).Append(": ").Append(value).Append("\r\n");
        }

        request.Append("\r\n");

        using var client = new TcpClient(new IPEndPoint(IPAddress.Parse(from), 0));
        await client.ConnectAsync(address, server.Port, ct).ConfigureAwait(false);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request.ToString()), ct).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, ct).ConfigureAwait(false);
        return Parse(buffer.ToArray());
    }

    private static RawHttpResponse Parse(byte[] raw)
    {
        var split = raw.AsSpan().IndexOf("\r\n\r\n"u8);
        if (split < 0)
        {
            throw new InvalidDataException("No HTTP header terminator in the answer.");
        }

        var head = Encoding.ASCII.GetString(raw, 0, split).Split("\r\n");
        var status = int.Parse(head[0].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in head.Skip(1))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }

        return new RawHttpResponse(status, headers, raw[(split + 4)..]);
    }
}
