using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// HTTP from the test process into a network namespace the test created: each connection's socket is made on a
/// short-lived thread that has entered the namespace (setns), so it lives there for good — its packets never touch
/// the test's own namespace. If the namespace cannot be entered, the connection fails; it never falls back.
/// </summary>
public static partial class NamespaceHttp
{
    private const int CloneNewNet = 0x40000000;

    /// <summary>An HttpClient whose every connection starts inside <c>/run/netns/<paramref name="namespaceName"/></c>.</summary>
    public static HttpClient Client(string namespaceName, Uri baseAddress, TimeSpan? timeout = null)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            PooledConnectionLifetime = TimeSpan.FromSeconds(5),
            ConnectCallback = async (context, cancellationToken) =>
            {
                if (!IPAddress.TryParse(context.DnsEndPoint.Host, out var address))
                {
                    throw new InvalidOperationException($"'{context.DnsEndPoint.Host}' is not an IP address (no DNS in tests)");
                }

                var socket = CreateSocketIn(namespaceName, address.AddressFamily);
                try
                {
                    await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), cancellationToken).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(10) };
    }

    /// <summary>A TCP socket created inside the namespace (it stays there whichever thread uses it later).</summary>
    public static Socket CreateSocketIn(string namespaceName, AddressFamily family)
    {
        ArgumentException.ThrowIfNullOrEmpty(namespaceName);
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using var target = File.OpenHandle(Path.Combine("/run/netns", namespaceName));
                if (SetNamespace((int)target.DangerousGetHandle(), CloneNewNet) != 0)
                {
                    throw new IOException($"setns({namespaceName}) failed: errno {Marshal.GetLastPInvokeError()}");
                }

                // This thread is in the namespace now and ends right after: nothing else ever runs on it.
                socket = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        })
        {
            IsBackground = true,
            Name = "netns " + namespaceName,
        };
        thread.Start();
        thread.Join();
        return socket ?? throw new IOException($"no socket in network namespace {namespaceName}", failure);
    }

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    private static partial int SetNamespace(int fd, int nsType);
}
