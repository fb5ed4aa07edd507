using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// A relay in front of the rig's dockerd (its own unix socket, given to the proxy as its engine endpoint) that passes
/// every byte unchanged, except that what the daemon sends on an event stream (<c>GET …/events</c>) can be held back:
/// while the valve is closed the monitor sees no engine event — as when it is slow to handle one — but every other
/// engine call (list, inspect) still goes through. Shows a container's first request arriving before the monitor has
/// seen the container start. What was held is kept, so a test can check which events the monitor saw late.
/// </summary>
public sealed class DockerEventsValve : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly string _daemonSocket;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private readonly StringBuilder _held = new();
    private readonly Task _accepting;
    private TaskCompletionSource _open = Opened();
    private int _eventStreams;

    private DockerEventsValve(string socketPath, string daemonSocket)
    {
        SocketPath = socketPath;
        _daemonSocket = daemonSocket;
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        _listener.Listen(64);
        _accepting = AcceptAsync();
    }

    public string SocketPath { get; }

    /// <summary>The engine endpoint to give the proxy (<c>MsiProxy:Docker:Endpoint</c>).</summary>
    public string Endpoint => "unix://" + SocketPath;

    /// <summary>Event streams relayed so far (one per monitor subscription).</summary>
    public int EventStreams => Volatile.Read(ref _eventStreams);

    /// <summary>Everything the daemon sent on event streams while the valve was closed (and was delivered on opening).</summary>
    public string Held
    {
        get
        {
            lock (_held)
            {
                return _held.ToString();
            }
        }
    }

    /// <summary>A relay on <paramref name="socketPath"/> in front of <paramref name="dockerd"/>; open until closed.</summary>
    public static DockerEventsValve Start(SecondDockerd dockerd, string socketPath)
    {
        ArgumentNullException.ThrowIfNull(dockerd);
        File.Delete(socketPath);
        return new DockerEventsValve(socketPath, dockerd.Socket);
    }

    /// <summary>From now on the daemon's event bytes wait in the relay.</summary>
    public void Close()
    {
        lock (_held)
        {
            if (_open.Task.IsCompleted)
            {
                _open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>Delivers what was held, and lets events through again.</summary>
    public void Open()
    {
        lock (_held)
        {
            _open.TrySetResult();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        Open();
        _listener.Dispose();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }

        try
        {
            await _accepting.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // stopped
        }

        File.Delete(SocketPath);
        _stop.Dispose();
    }

    private static TaskCompletionSource Opened()
    {
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        open.SetResult();
        return open;
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            _ = RelayAsync(client);
        }
    }

    private async Task RelayAsync(Socket client)
    {
        var daemon = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        lock (_sockets)
        {
            _sockets.Add(client);
            _sockets.Add(daemon);
        }

        try
        {
            await daemon.ConnectAsync(new UnixDomainSocketEndPoint(_daemonSocket), _stop.Token).ConfigureAwait(false);
            var connection = new Connection();
            await Task.WhenAll(ToDaemonAsync(client, daemon, connection), ToClientAsync(daemon, client, connection)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // a side went away: so does the other
        }
        finally
        {
            client.Dispose();
            daemon.Dispose();
            lock (_sockets)
            {
                _sockets.Remove(client);
                _sockets.Remove(daemon);
            }
        }
    }

    /// <summary>The client's requests, unchanged; a request line asking for events marks the connection (it never ends).</summary>
    private async Task ToDaemonAsync(Socket client, Socket daemon, Connection connection)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            var read = await client.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            if (read == 0)
            {
                daemon.Shutdown(SocketShutdown.Send);
                return;
            }

            if (!connection.IsEventStream)
            {
                connection.Requests.Append(Encoding.ASCII.GetString(buffer, 0, read));
                if (connection.Requests.ToString().Split("\r\n").Any(l => l.StartsWith("GET ", StringComparison.Ordinal) && l.Contains("/events", StringComparison.Ordinal)))
                {
                    connection.IsEventStream = true;
                    Interlocked.Increment(ref _eventStreams);
                }
            }

            await daemon.SendAsync(buffer.AsMemory(0, read), SocketFlags.None, _stop.Token).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The daemon's answers: read as they come (so a held stream's events are all in <see cref="Held"/>, not left in
    /// the socket), written in order, an event stream's only while the valve is open.
    /// </summary>
    private async Task ToClientAsync(Socket daemon, Socket client, Connection connection)
    {
        var chunks = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var writing = WriteAsync(chunks.Reader, client, connection);
        try
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var read = await daemon.ReceiveAsync(buffer, SocketFlags.None, _stop.Token).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }

                lock (_held)
                {
                    // Held: the valve is closed, or what came before it still waits to be written.
                    if (connection.IsEventStream && (!_open.Task.IsCompleted || connection.Unsent > 0))
                    {
                        _held.Append(Encoding.UTF8.GetString(buffer, 0, read));
                    }

                    connection.Unsent++;
                }

                chunks.Writer.TryWrite(buffer[..read]);
            }
        }
        finally
        {
            chunks.Writer.TryComplete();
        }

        await writing.ConfigureAwait(false);
        client.Shutdown(SocketShutdown.Send);
    }

    private async Task WriteAsync(ChannelReader<byte[]> chunks, Socket client, Connection connection)
    {
        await foreach (var chunk in chunks.ReadAllAsync(_stop.Token).ConfigureAwait(false))
        {
            if (connection.IsEventStream)
            {
                Task open;
                lock (_held)
                {
                    open = _open.Task;
                }

                await open.WaitAsync(_stop.Token).ConfigureAwait(false);
            }

            await client.SendAsync(chunk, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            lock (_held)
            {
                connection.Unsent--;
            }
        }
    }

    private sealed class Connection
    {
        public StringBuilder Requests { get; } = new();

        private volatile bool _isEventStream;

        /// <summary>Chunks read from the daemon and not yet written to the client (guarded by the valve's lock).</summary>
        public int Unsent { get; set; }

        public bool IsEventStream
        {
            get => _isEventStream;
            set => _isEventStream = value;
        }
    }
}
