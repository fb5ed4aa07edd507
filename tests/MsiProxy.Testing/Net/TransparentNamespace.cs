using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace MsiProxy.Testing.Net;

/// <summary>
/// A network namespace made for one test, in which <c>http://169.254.169.254</c> is local: it holds only <c>lo</c>,
/// up, with <c>169.254.169.254/32</c> on it. A client run inside calls IMDS's own address unchanged — no
/// AZURE_POD_IDENTITY_AUTHORITY_HOST — and reaches whatever listens there in the namespace (the proxy); nothing can
/// leave it, since it has no other interface and no route. Callers on <c>lo</c> that connect to 169.254.169.254 get
/// it as their source address too, so that is the address to register as the client.
/// <para>
/// The test process holds the namespace open through a file descriptor (so it vanishes with the process, also when
/// the test crashes) and reaches into it three ways: <see cref="Wrapper"/> runs a command inside (<c>nsenter</c>,
/// and a guard that refuses to run it anywhere else), <see cref="CreateSocket"/> makes a socket there, and
/// <see cref="CreateHttpClient"/> makes an HttpClient whose connections are made there.
/// </para>
/// </summary>
public sealed class TransparentNamespace : IClientNamespace, IDisposable
{
    public const string ImdsAddress = "169.254.169.254";

    private const int CloneNewNet = 0x40000000;

    /// <summary>
    /// Runs "$@" only when the shell really is in the namespace named by $0 (e.g. "net:[4026532301]"): a namespace
    /// that went away, or any mistake in the wrapper, can then never run a client in this machine's own namespace.
    /// </summary>
    private const string GuardScript =
        "[ \"$(readlink /proc/self/ns/net)\" = \"$0\" ] || { echo \"not in the test network namespace $0\" >&2; exit 97; }; exec \"$@\"";

    /// <summary>
    /// As <see cref="GuardScript"/>, for long-running programs: the program runs with stdin from /dev/null, and is sent
    /// SIGTERM when this wrapper's stdin closes — when the test disposes it or the test process dies.
    /// </summary>
    private const string SupervisedGuardScript =
        "[ \"$(readlink /proc/self/ns/net)\" = \"$0\" ] || { echo \"not in the test network namespace $0\" >&2; exit 97; }; " +
        "exec 3<&0; \"$@\" </dev/null & child=$!; ( cat <&3 >/dev/null; kill -TERM $child 2>/dev/null ) & exec 3<&-; wait $child";

    private readonly SafeFileHandle _handle;
    private readonly string _path;

    private TransparentNamespace(SafeFileHandle handle, string identity)
    {
        _handle = handle;
        Identity = identity;
        _path = $"/proc/{Environment.ProcessId}/fd/{handle.DangerousGetHandle()}";
    }

    /// <summary>Null when namespaces can be made here (Linux, root, unshare/nsenter/ip); otherwise why not.</summary>
    public static string? UnavailableReason { get; } = FindUnavailableReason();

    /// <summary>The namespace as the kernel names it, e.g. <c>net:[4026532301]</c>.</summary>
    public string Identity { get; }

    /// <summary>Prefix for a command line that runs it inside this namespace (and only there).</summary>
    public IReadOnlyList<string> Wrapper => GuardedWrapper(_path, Identity);

    /// <summary>As <see cref="Wrapper"/>, for a program that must stop when its stdin closes (see the class remarks).</summary>
    public IReadOnlyList<string> SupervisedWrapper => ["nsenter", $"--net={_path}", "--", "sh", "-c", SupervisedGuardScript, Identity];

    public static async Task<TransparentNamespace> CreateAsync(CancellationToken ct = default)
    {
        if (UnavailableReason is { } reason)
        {
            throw new InvalidOperationException($"Cannot create a test network namespace: {reason}");
        }

        // The anchor makes the namespace, checks it holds nothing but lo, sets it up, and waits for a line on stdin
        // while the test opens its namespace file; after that the open descriptor keeps the namespace alive.
        var start = new ProcessStartInfo("unshare")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "-n", "sh", "-c",
                     "[ \"$(ip -o link show | wc -l)\" -eq 1 ] && ip link set lo up && ip addr add " + ImdsAddress +
                     "/32 dev lo && echo ready && read _",
                 })
        {
            start.ArgumentList.Add(arg);
        }

        using var anchor = Process.Start(start) ?? throw new InvalidOperationException("Could not start unshare.");
        try
        {
            using var ready = CancellationTokenSource.CreateLinkedTokenSource(ct);
            ready.CancelAfter(TimeSpan.FromSeconds(10));
            var line = await anchor.StandardOutput.ReadLineAsync(ready.Token).ConfigureAwait(false);
            if (line != "ready")
            {
                var errors = await anchor.StandardError.ReadToEndAsync(ready.Token).ConfigureAwait(false);
                throw new InvalidOperationException($"Setting up the test network namespace failed: {line} {errors}");
            }

            var handle = File.OpenHandle($"/proc/{anchor.Id}/ns/net", FileMode.Open, FileAccess.Read);
            var identity = NamespaceOf($"/proc/self/fd/{handle.DangerousGetHandle()}");
            if (identity == NamespaceOf("/proc/self/ns/net") || !identity.StartsWith("net:[", StringComparison.Ordinal))
            {
                handle.Dispose();
                throw new InvalidOperationException($"The anchor's namespace {identity} is not a new one.");
            }

            return new TransparentNamespace(handle, identity);
        }
        finally
        {
            anchor.StandardInput.Close();
            if (!anchor.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                anchor.Kill();
            }
        }
    }

    /// <summary>
    /// A socket that belongs to this namespace: it is created on a thread of its own that first joins the namespace
    /// (and checks it did), so binding or connecting it afterwards, from any thread, happens in the namespace.
    /// </summary>
    public Socket CreateSocket(AddressFamily family, SocketType type, ProtocolType protocol)
    {
        Socket? socket = null;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                if (setns(checked((int)_handle.DangerousGetHandle()), CloneNewNet) != 0)
                {
                    throw new InvalidOperationException($"setns failed: errno {Marshal.GetLastPInvokeError()}");
                }

                var current = NamespaceOf("/proc/thread-self/ns/net");
                if (current != Identity)
                {
                    throw new InvalidOperationException($"After setns the thread is in {current}, not {Identity}.");
                }

                socket = new Socket(family, type, protocol);
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        })
        { IsBackground = true, Name = "netns socket" };
        thread.Start();
        thread.Join();
        return socket ?? throw new InvalidOperationException("Could not create a socket in the test network namespace.", failure);
    }

    /// <summary>
    /// An HttpClient whose connections are made inside this namespace, to literal addresses only (the proxy on
    /// 169.254.169.254, its management listener or the emulator on 127.0.0.1): no proxy, no DNS.
    /// </summary>
    public HttpClient CreateHttpClient(Uri baseAddress, TimeSpan? timeout = null)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            ConnectCallback = async (context, ct) =>
            {
                if (!IPAddress.TryParse(context.DnsEndPoint.Host, out var address)
                    || !(IPAddress.IsLoopback(address) || address.ToString() == ImdsAddress))
                {
                    throw new HttpRequestException($"Namespace clients connect to 127.0.0.0/8 or {ImdsAddress} only, not {context.DnsEndPoint.Host}.");
                }

                var socket = CreateSocket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    socket.NoDelay = true;
                    await socket.ConnectAsync(new IPEndPoint(address, context.DnsEndPoint.Port), ct).ConfigureAwait(false);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler, disposeHandler: true) { BaseAddress = baseAddress, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
    }

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// <c>nsenter --net=<paramref name="netnsPath"/></c> with the guard: the command runs only if the namespace entered
    /// is <paramref name="identity"/> (as read when the namespace was made or found).
    /// </summary>
    internal static IReadOnlyList<string> GuardedWrapper(string netnsPath, string identity) =>
        ["nsenter", $"--net={netnsPath}", "--", "sh", "-c", GuardScript, identity];

    public override string ToString() => Identity;

    private static string NamespaceOf(string path) =>
        new FileInfo(path).LinkTarget ?? throw new InvalidOperationException($"{path} is not a namespace link.");

    private static string? FindUnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "network namespaces need Linux";
        }

        if (!Environment.IsPrivilegedProcess)
        {
            return "creating a network namespace needs root";
        }

        foreach (var tool in new[] { "unshare", "nsenter", "ip" })
        {
            var found = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Any(dir => File.Exists(Path.Combine(dir, tool)));
            if (!found)
            {
                return $"{tool} is not installed (util-linux, iproute2)";
            }
        }

        return null;
    }

#pragma warning disable CA5392, SYSLIB1054 // libc, by name; a plain DllImport needs no unsafe code
    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);
#pragma warning restore CA5392, SYSLIB1054
}
