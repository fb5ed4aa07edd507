using System.Net;
using System.Net.Sockets;

namespace MsiProxy.Testing.Net;

/// <summary>
/// HttpClients that play different callers on one machine: all of 127.0.0.0/8 is local, so binding the client
/// socket to 127.0.0.2, 127.0.0.3… before connecting makes the server see that address as the caller.
/// Only loopback sources and targets are allowed, so a test cannot reach the network by mistake.
/// </summary>
public static class LoopbackCaller
{
    /// <summary>A loopback port that was free a moment ago, for a child process's listener (which cannot report port 0 back).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>An HttpClient whose connections leave from <paramref name="source"/> (e.g. 127.0.0.2), no proxy.</summary>
    public static HttpClient Create(IPAddress source, Uri? baseAddress = null, TimeSpan? timeout = null) =>
        new(CreateHandler(source), disposeHandler: true)
        {
            BaseAddress = baseAddress,
            Timeout = timeout ?? TimeSpan.FromSeconds(30),
        };

    public static HttpClient Create(string source, Uri? baseAddress = null, TimeSpan? timeout = null) =>
        Create(IPAddress.Parse(source), baseAddress, timeout);

    public static SocketsHttpHandler CreateHandler(IPAddress source)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (!IPAddress.IsLoopback(source))
        {
            throw new ArgumentException($"Source {source} is not a loopback address.", nameof(source));
        }

        return new SocketsHttpHandler
        {
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
            ConnectCallback = async (context, ct) =>
            {
                var target = await ResolveLoopbackAsync(context.DnsEndPoint, ct).ConfigureAwait(false);
                var socket = new Socket(source.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(source, 0));
                    await socket.ConnectAsync(target, ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
    }

    private static async Task<IPEndPoint> ResolveLoopbackAsync(DnsEndPoint endpoint, CancellationToken ct)
    {
        var address = IPAddress.TryParse(endpoint.Host, out var literal)
            ? literal
            : (await Dns.GetHostAddressesAsync(endpoint.Host, ct).ConfigureAwait(false)).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork);
        if (address is null || !IPAddress.IsLoopback(address))
        {
            throw new HttpRequestException($"LoopbackCaller only connects to loopback targets, not {endpoint.Host}.");
        }

        return new IPEndPoint(address, endpoint.Port);
    }
}
