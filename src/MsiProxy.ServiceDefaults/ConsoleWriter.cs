namespace MsiProxy.ServiceDefaults;

/// <summary>
/// The one thread that writes the console's queues (<see cref="ConsoleQueue"/>): woken by the first line after it
/// parked, it lets lines gather for up to <see cref="ConsoleQueue.GatherTime"/>, then writes each queue's batch, the
/// first queue's first. Why one thread for both: at a node's rates (a request now and then) each request's two lines —
/// request log and audit — woke a writer each, and those wake-ups were most of the writers' CPU (docs/benchmarks.md,
/// "A node's load"); one writer wakes once for both.
/// </summary>
internal sealed class ConsoleWriter : IDisposable
{
    // No spinning before a wait: the writer's waits are a gather time or an idle park, never a moment's pause.
    private readonly ManualResetEventSlim _wake = new(false, spinCount: 0);
    private readonly ManualResetEventSlim _hurry = new(false, spinCount: 0);
    private readonly Lock _stopLock = new();
    private readonly Thread _thread;
    private ConsoleQueue[]? _queues;
    private int _parked;
    private volatile bool _stopping;

    public ConsoleWriter(string name) => _thread = new Thread(WriteLoop) { IsBackground = true, Name = name };

    /// <summary>Starts writing these queues, in this order; once.</summary>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public void Start(params ConsoleQueue[] queues)
    {
        if (Interlocked.CompareExchange(ref _queues, queues, null) is not null)
        {
            throw new InvalidOperationException("the writer was started already");
        }

        _thread.Start();
    }

    /// <summary>Whether the writer sleeps until a line is queued (for tests that must catch it asleep).</summary>
    internal bool IsParked => Volatile.Read(ref _parked) == 1;

    /// <summary>A queue is full: write now rather than at the end of the gather time.</summary>
    public void Hurry() => _hurry.Set();

    /// <summary>A line was just queued: wakes the writer if it is parked.</summary>
    public void Queued()
    {
        // A full fence between the line and the flag: either the writer sees the line before it parks, or we see it parked.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _parked) == 1 && Interlocked.Exchange(ref _parked, 0) == 1)
        {
            _wake.Set();
        }
    }

    /// <summary>
    /// Writes out what is queued and ends the thread; every call returns once the thread has ended. The wait handles
    /// stay: a producer that found its queue full just before may still hurry the writer.
    /// </summary>
    public void Dispose()
    {
        lock (_stopLock)
        {
            if (_stopping)
            {
                return;
            }

            _stopping = true;
            Interlocked.MemoryBarrier(); // the flag before the wake-up: a writer about to park sees it, or is woken
            _wake.Set();
            _hurry.Set();
            if (_thread.IsAlive)
            {
                _thread.Join();
            }
        }
    }

    private void WriteLoop()
    {
        while (true)
        {
            var written = 0;
            foreach (var queue in _queues!)
            {
                written += queue.WriteQueued();
            }

            if (written == 0)
            {
                if (_stopping)
                {
                    return;
                }

                Park();
            }

            // Let the next lines gather into one write, unless a producer found its queue full or we are stopping.
            if (!_stopping)
            {
                _hurry.Wait(ConsoleQueue.GatherTime);
            }

            _hurry.Reset();
        }
    }

    /// <summary>Sleeps until a producer finds the writer parked, or <see cref="Dispose"/>.</summary>
    private void Park()
    {
        _wake.Reset();
        // A full fence before the queues are read: either the producer sees the flag, or we see its line.
        Interlocked.Exchange(ref _parked, 1);
        if (!AnyPending() && !_stopping)
        {
            _wake.Wait();
        }

        Interlocked.Exchange(ref _parked, 0);
    }

    private bool AnyPending()
    {
        foreach (var queue in _queues!)
        {
            if (queue.HasPending)
            {
                return true;
            }
        }

        return false;
    }
}
