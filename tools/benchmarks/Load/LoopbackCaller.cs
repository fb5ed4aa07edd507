using System.Net;
using System.Net.Sockets;

namespace MsiProxy.Benchmarks.Load;

/// <summary>Callers with their own loopback source address (127.0.0.x), so the proxy sees each as a distinct client.</summary>
internal static class LoopbackCaller
{
    /// <summary>An HttpClient whose connections leave from <paramref name="local"/>: the proxy sees a distinct caller.</summary>
    public static HttpClient Client(IPAddress local) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(local, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { Timeout = TimeSpan.FromSeconds(30) };
}
