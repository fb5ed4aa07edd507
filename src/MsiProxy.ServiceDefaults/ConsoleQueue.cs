using Serilog.Core;
using Serilog.Debugging;
using Serilog.Events;

namespace MsiProxy.ServiceDefaults;

/// <summary>
/// A bounded queue of log lines to standard output, written in batches by a <see cref="ConsoleWriter"/> thread (its
/// own, or one it shares with the other queue: <see cref="ConsoleQueues.Create"/>). The caller formats its event as
/// one JSON line (<see cref="JsonLines"/>) into a buffer of its thread's and appends the bytes to the queue's pending
/// buffer; the writer wakes at most once per <see cref="GatherTime"/> under load, swaps the pending buffer for its own
/// and writes what has gathered with one <c>write(2)</c>. No line is an allocation of its own: an
/// array per line, and the concurrent queue that carried it, were 5 % of the process's samples with logging on.
/// Why not a queue that wakes its reader per event (Serilog.Sinks.Async): on the cached-hit path that wake-up and the write per event were
/// the cost of logging — 28 % of the process's CPU in the kernel under the sink threads, mostly context switches.
/// Why format on the caller's thread: the event's ~15 properties are objects the caller has just made, in its own
/// cache; read by the writer on another core they were cache misses, and formatting there cost ~3.5× as much. Tried
/// again with a shaped event's few values instead of a Serilog event, the writer still spent more than the request
/// thread saved (docs/benchmarks.md, "Logging off the request thread"). What can wait — the write — still happens off
/// the request thread.
/// </summary>
/// <remarks>
/// When full, a queue either drops the new event and counts it (<c>blockWhenFull: false</c>) or makes the caller wait
/// for room (backpressure: nothing is dropped). Full is a number of lines, or the pending bytes' bound, whichever comes
/// first. A full queue hurries the writer rather than waiting out the gather time. A line that cannot be formatted is
/// not written (Serilog's SelfLog says why) and gives its room back.
/// Disposal writes out everything queued; an event that arrives after it is written at once, on the caller's thread.
/// </remarks>
internal sealed class ConsoleQueue : ILogEventSink, IDisposable
{
    /// <summary>How long the writer lets events gather after the first one wakes it: the longest a line waits, besides the other queue's write.</summary>
    internal static readonly TimeSpan GatherTime = TimeSpan.FromMilliseconds(10);

    private const int MaxKeptLineBytes = 16 * 1024;

    private const int MaxKeptBatchBytes = 1024 * 1024;

    [ThreadStatic]
    private static LineWriter? t_lineWriter;

    private readonly Lock _pendingLock = new();
    private readonly Lock _writeLock = new();
    private readonly ConsoleOutput _output;
    private readonly LogQueues.Monitor _monitor;
    private readonly int _capacity;
    private readonly bool _blockWhenFull;
    private readonly object _room = new();
    private readonly ConsoleWriter _writer;
    private readonly bool _ownsWriter;
    private MemoryStream _pending = new();
    private MemoryStream _writing = new();
    private readonly long _maxPendingBytes;
    private int _pendingLines;
    private long _pendingBytes;
    private int _count;
    private int _roomWaiters;
    private volatile bool _stopping;
    private bool _disposed;

    /// <param name="writer">The thread that writes this queue, started and stopped by its owner (<see cref="ConsoleQueues.Create"/>); none: a thread of its own.</param>
    public ConsoleQueue(LogQueues.Monitor monitor, int capacity, bool blockWhenFull, ConsoleOutput output, ConsoleWriter? writer = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        // Lines are bounded in number and, as a caller can make one long (a path, a header), in bytes: 2 KB a line on
        // average (~3 times a request line), from 1 MB to 256 MB.
        _maxPendingBytes = Math.Clamp(capacity * 2048L, 1L << 20, 256L << 20);
        _blockWhenFull = blockWhenFull;
        _output = output;
        _monitor = monitor;
        _ownsWriter = writer is null;
        _writer = writer ?? new ConsoleWriter($"{monitor.Kind} log writer");
        if (_ownsWriter)
        {
            _writer.Start(this);
        }

        monitor.StartMonitoring(this);
    }

    /// <summary>Lines waiting to be written.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Whether lines are queued that the writer has not taken yet.</summary>
    internal bool HasPending => Volatile.Read(ref _pendingLines) > 0;

    public void Emit(LogEvent logEvent) => Emit(new SerilogLine(logEvent));

    /// <summary>Queues a line, or drops it (counted) or waits for room when the queue is full; formats it only if it is kept.</summary>
    internal void Emit<TLine>(TLine line)
        where TLine : IConsoleLine, allows ref struct
    {
        if (_stopping)
        {
            WriteNow(line);
            return;
        }

        while (Interlocked.Increment(ref _count) > _capacity)
        {
            Interlocked.Decrement(ref _count);
            _writer.Hurry();
            if (!_blockWhenFull)
            {
                _monitor.CountDropped();
                return;
            }

            WaitForRoom();
            if (_stopping)
            {
                WriteNow(line);
                return;
            }
        }

        // Its room is taken: a line dropped for want of room is never formatted, and one that cannot be gives it back.
        if (!TryFormat(line, out var bytes))
        {
            FreeRoom(1);
            return;
        }

        while (!TryAppend(bytes))
        {
            // The pending bytes are at their bound (lines made long by what a caller sent): hurried, the writer makes
            // room, and until then this line waits or is dropped as it would be in a full queue.
            _writer.Hurry();
            if (!_blockWhenFull || _stopping)
            {
                FreeRoom(1);
                if (_stopping)
                {
                    _output.Write(bytes);
                }
                else
                {
                    _monitor.CountDropped();
                }

                ReleaseLongLine();
                return;
            }

            WaitForBytes(bytes.Length);
        }

        ReleaseLongLine();
        _writer.Queued();

        if (_stopping)
        {
            // Disposal began between the check above and the append: the writer may be gone, so write it out here.
            WriteQueued();
        }
    }

    /// <summary>From now on, lines are written at once on their caller's thread, and whoever waits for room stops waiting.</summary>
    internal void BeginStopping()
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        Interlocked.MemoryBarrier(); // the flag before the queue is read again, as Emit enqueues before it reads the flag
        lock (_room)
        {
            Monitor.PulseAll(_room);
        }
    }

    /// <summary>
    /// Writes out everything queued, and stops the writer if it is the queue's own (a shared one goes on writing the
    /// other queue: its owner stops it); later events are written on their caller's thread.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        BeginStopping();
        if (_ownsWriter)
        {
            _writer.Dispose();
        }

        WriteQueued();
        _monitor.StopMonitoring(this);
    }

    private void WaitForRoom()
    {
        lock (_room)
        {
            // Counted (with a full fence) before the check, so the writer's wake-up after freeing room cannot be missed.
            Interlocked.Increment(ref _roomWaiters);
            while (Volatile.Read(ref _count) >= _capacity && !_stopping)
            {
                Monitor.Wait(_room);
            }

            Interlocked.Decrement(ref _roomWaiters);
        }
    }

    private void WaitForBytes(int length)
    {
        lock (_room)
        {
            Interlocked.Increment(ref _roomWaiters);
            while (Volatile.Read(ref _pendingBytes) is > 0 and var pending && pending + length > _maxPendingBytes && !_stopping)
            {
                Monitor.Wait(_room);
            }

            Interlocked.Decrement(ref _roomWaiters);
        }
    }

    /// <summary>Appends a formatted line unless the pending bytes would pass their bound (a line alone always fits).</summary>
    private bool TryAppend(ReadOnlySpan<byte> bytes)
    {
        lock (_pendingLock)
        {
            if (_pending.Length > 0 && _pending.Length + bytes.Length > _maxPendingBytes)
            {
                return false;
            }

            _pending.Write(bytes);
            _pendingLines++;
            Volatile.Write(ref _pendingBytes, _pending.Length);
            return true;
        }
    }

    /// <summary>Gives back the room of lines written (or not written after all), waking whoever waits for it.</summary>
    private void FreeRoom(int lines)
    {
        Interlocked.Add(ref _count, -lines);
        if (Volatile.Read(ref _roomWaiters) > 0)
        {
            lock (_room)
            {
                Monitor.PulseAll(_room);
            }
        }
    }

    /// <summary>Writes what is queued with one write, and frees its room. Producers append to the other buffer meanwhile.</summary>
    internal int WriteQueued()
    {
        int written;
        lock (_writeLock)
        {
            lock (_pendingLock)
            {
                (_pending, _writing) = (_writing, _pending);
                written = _pendingLines;
                _pendingLines = 0;
                Volatile.Write(ref _pendingBytes, 0);
            }

            if (_writing.Length > 0)
            {
                _output.Write(_writing.GetBuffer().AsSpan(0, (int)_writing.Length));
            }

            // A burst's buffer is not kept for good.
            if (_writing.Capacity > MaxKeptBatchBytes)
            {
                _writing = new MemoryStream();
            }
            else
            {
                _writing.SetLength(0);
            }
        }

        if (written > 0)
        {
            FreeRoom(written);
        }

        return written;
    }

    /// <summary>Writes a line at once, on the caller's thread (after disposal).</summary>
    private void WriteNow<TLine>(TLine line)
        where TLine : IConsoleLine, allows ref struct
    {
        if (TryFormat(line, out var bytes))
        {
            _output.Write(bytes);
        }

        ReleaseLongLine();
    }

    /// <summary>
    /// The line, newline included, formatted into the calling thread's own buffer (valid until its next line); false,
    /// and nothing to write, when it could not be formatted.
    /// </summary>
    private static bool TryFormat<TLine>(TLine line, out ReadOnlySpan<byte> bytes)
        where TLine : IConsoleLine, allows ref struct
    {
        var writer = t_lineWriter ??= new LineWriter();
        writer.Line.SetLength(0);
        try
        {
            line.WriteTo(writer.Lines, writer.Line);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // A logging call must never fail the request that made it.
            SelfLog.WriteLine("ConsoleQueue could not format a line: {0}", ex);
            writer.Line.SetLength(0);
        }

        bytes = writer.Line.GetBuffer().AsSpan(0, (int)writer.Line.Length);
        return bytes.Length > 0;
    }

    /// <summary>A long line (an exception's stack) must not stay allocated on every thread that logged one.</summary>
    private static void ReleaseLongLine()
    {
        if (t_lineWriter is { Line.Capacity: > MaxKeptLineBytes })
        {
            t_lineWriter = null;
        }
    }

    /// <summary>A thread's <see cref="JsonLines"/> (which is not thread-safe) and the buffer it formats into.</summary>
    private sealed class LineWriter
    {
        public JsonLines Lines { get; } = new();

        public MemoryStream Line { get; } = new();
    }
}

/// <summary>What a <see cref="ConsoleQueue"/> carries: something that writes itself as one JSON line.</summary>
internal interface IConsoleLine
{
    void WriteTo(JsonLines lines, MemoryStream output);
}

/// <summary>A Serilog event's line.</summary>
internal readonly struct SerilogLine(LogEvent logEvent) : IConsoleLine
{
    public void WriteTo(JsonLines lines, MemoryStream output) => lines.Write(logEvent, output);
}

/// <summary>Standard output, shared by the queues: one write per batch under a lock, so lines from two queues never interleave.</summary>
internal sealed class ConsoleOutput(Stream stream)
{
    /// <summary>The process's standard output, unbuffered (each batch is one write).</summary>
    public static readonly ConsoleOutput StandardOutput = new(Console.OpenStandardOutput());

    private readonly Lock _lock = new();

    public void Write(ReadOnlySpan<byte> bytes)
    {
        lock (_lock)
        {
            try
            {
                stream.Write(bytes);
            }
            catch (IOException ex)
            {
                // Nobody reads standard output any more (a closed pipe): nothing left to tell.
                SelfLog.WriteLine("ConsoleOutput could not write {0} bytes: {1}", bytes.Length, ex.Message);
            }
        }
    }
}
