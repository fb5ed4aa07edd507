using System.Text;
using System.Text.Json;
using MsiProxy.ServiceDefaults;
using Serilog.Events;
using Serilog.Parsing;

namespace MsiProxy.UnitTests.ServiceDefaults;

/// <summary>
/// The console queue between request threads and standard output: every event is written exactly once, or dropped
/// and counted, or (blocking) waited for; lines stay whole; a burst becomes few writes; disposal loses nothing.
/// </summary>
public sealed class ConsoleQueueTests
{
    private static readonly MessageTemplate Template = new MessageTemplateParser().Parse("event {N} of {Producer}");

    [Fact]
    public void A_blocking_queue_of_one_writes_every_event_of_many_producers_exactly_once()
    {
        var output = new RecordingStream();
        var monitor = new LogQueues.Monitor("audit");
        using (var queue = new ConsoleQueue(monitor, capacity: 1, blockWhenFull: true, new ConsoleOutput(output)))
        {
            Produce(queue, producers: 8, each: 500);
        }

        var lines = output.Lines();
        Assert.Equal(8 * 500, lines.Count);
        Assert.Equal(8 * 500, lines.Distinct().Count());
        Assert.Equal(0, monitor.Dropped().Value);
        // Each producer's own events keep their order.
        foreach (var producer in lines.GroupBy(l => l.Producer))
        {
            Assert.Equal(Enumerable.Range(0, 500), producer.Select(l => l.N));
        }
    }

    [Fact]
    public void A_dropping_queue_that_overflows_writes_some_events_and_counts_every_other_one()
    {
        var output = new RecordingStream { Delay = TimeSpan.FromMilliseconds(5) };
        var monitor = new LogQueues.Monitor("logs");
        using (var queue = new ConsoleQueue(monitor, capacity: 16, blockWhenFull: false, new ConsoleOutput(output)))
        {
            Produce(queue, producers: 4, each: 2_000);
        }

        var written = output.Lines().Count;
        var dropped = monitor.Dropped().Value;
        Assert.True(dropped > 0, $"a queue of 16 behind a slow output dropped nothing of 8,000 ({written} written)");
        Assert.True(written >= 16, $"only {written} written");
        Assert.Equal(8_000, written + dropped);
    }

    [Fact]
    public void Events_that_trickle_in_are_gathered_into_few_writes()
    {
        // One event every ~50 µs for ~20 ms: a writer that woke per event would make about one write each.
        var output = new RecordingStream();
        using (var queue = new ConsoleQueue(new LogQueues.Monitor("logs"), capacity: 10_000, blockWhenFull: false, new ConsoleOutput(output)))
        {
            var pace = System.Diagnostics.Stopwatch.StartNew();
            for (var n = 0; n < 400; n++)
            {
                queue.Emit(Event(0, n));
                var next = TimeSpan.FromMicroseconds(50 * (n + 1));
                while (pace.Elapsed < next)
                {
                    Thread.SpinWait(20);
                }
            }
        }

        Assert.Equal(400, output.Lines().Count);
        Assert.True(output.Writes <= 20, $"{output.Writes} writes for 400 events over 20 ms: not gathered");
    }

    [Fact]
    public void Two_queues_on_one_output_never_split_a_line()
    {
        var output = new RecordingStream();
        var shared = new ConsoleOutput(output);
        using (var audit = new ConsoleQueue(new LogQueues.Monitor("audit"), 64, blockWhenFull: true, shared))
        using (var logs = new ConsoleQueue(new LogQueues.Monitor("logs"), 100_000, blockWhenFull: false, shared))
        {
            Parallel.Invoke(() => Produce(audit, 2, 3_000), () => Produce(logs, 2, 3_000));
        }

        // Lines() parses every line as one JSON object: a torn or interleaved line fails here.
        Assert.Equal(12_000, output.Lines().Count);
    }

    [Fact]
    public void An_event_queued_just_before_disposal_is_written_and_one_after_it_too()
    {
        var output = new RecordingStream();
        var queue = new ConsoleQueue(new LogQueues.Monitor("audit"), 10_000, blockWhenFull: true, new ConsoleOutput(output));
        queue.Emit(Event(0, 0));
        queue.Dispose();
        Assert.Single(output.Lines());

        queue.Emit(Event(1, 0));
        Assert.Equal([(0, 0), (1, 0)], output.Lines().Select(l => (l.Producer, l.N)));
    }

    [Fact]
    public void The_monitor_counts_what_a_disposed_queue_dropped_and_follows_the_newest_queue()
    {
        var monitor = new LogQueues.Monitor("logs");
        var slow = new RecordingStream { Delay = TimeSpan.FromMilliseconds(20) };
        using (var first = new ConsoleQueue(monitor, capacity: 1, blockWhenFull: false, new ConsoleOutput(slow)))
        {
            Produce(first, 1, 200);
        }

        var droppedByFirst = monitor.Dropped().Value;
        Assert.True(droppedByFirst > 0, "a queue of one behind a slow output dropped nothing");

        using var second = new ConsoleQueue(monitor, capacity: 10, blockWhenFull: false, new ConsoleOutput(new RecordingStream()));
        Assert.Equal(droppedByFirst, monitor.Dropped().Value);
        Assert.Equal(0, monitor.Queued().Value);
    }

    [Fact]
    public void The_monitor_counts_the_drops_of_a_queue_it_no_longer_watches()
    {
        // The monitor once read a queue's own count, and only when that queue was the one it watched: a queue replaced
        // by a newer logger's, or dropping while it was disposed, dropped lines that no counter showed.
        var monitor = new LogQueues.Monitor("logs");
        using var gate = new ManualResetEventSlim(false);
        var held = new RecordingStream { Gate = gate };
        var older = new ConsoleQueue(monitor, capacity: 1, blockWhenFull: false, new ConsoleOutput(held));
        using var newer = new ConsoleQueue(monitor, capacity: 10, blockWhenFull: false, new ConsoleOutput(new RecordingStream()));

        older.Emit(Event(0, 0));
        Assert.True(held.Entered.Wait(TimeSpan.FromSeconds(10)), "the writer never wrote");
        // The line being written keeps its room until it is out: the queue of one is full, and these three are dropped.
        for (var n = 1; n <= 3; n++)
        {
            older.Emit(Event(0, n));
        }

        Assert.Equal(3, monitor.Dropped().Value);
        gate.Set();
        older.Dispose();
        Assert.Equal([(0, 0)], held.Lines());
        Assert.Equal(3, monitor.Dropped().Value);
    }

    [Fact]
    public void The_audit_category_and_its_subcategories_go_to_the_audit_queue_and_everything_else_to_the_logs_queue()
    {
        var auditOutput = new RecordingStream();
        var logsOutput = new RecordingStream();
        string?[] sources = ["MsiProxy.Audit", "MsiProxy.Audit.Admin", "MsiProxy.Auditor", "MsiProxy.Requests", null];
        using var audit = new ConsoleQueue(new LogQueues.Monitor("audit"), 16, blockWhenFull: true, new ConsoleOutput(auditOutput));
        using (var queues = new ConsoleQueues("MsiProxy.Audit", audit,
            logs: new ConsoleQueue(new LogQueues.Monitor("logs"), 16, blockWhenFull: false, new ConsoleOutput(logsOutput))))
        {
            // A shaped event's category is routed as a Serilog event's source is.
            Assert.Equal([true, true, false, false], sources[..4].Select(s => ReferenceEquals(queues.QueueOf(s!), audit)));
            for (var i = 0; i < sources.Length; i++)
            {
                var properties = new List<LogEventProperty> { new("N", new ScalarValue(i)), new("Producer", new ScalarValue(0)) };
                if (sources[i] is { } source)
                {
                    properties.Add(new LogEventProperty(Serilog.Core.Constants.SourceContextPropertyName, new ScalarValue(source)));
                }

                queues.Emit(new LogEvent(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, Template, properties));
            }
        }

        // Disposal wrote both queues out.
        Assert.Equal([0, 1], auditOutput.Lines().Select(l => l.N));
        Assert.Equal([2, 3, 4], logsOutput.Lines().Select(l => l.N));
    }

    [Fact]
    public async Task A_line_that_cannot_be_formatted_is_not_written_and_gives_its_room_back()
    {
        var output = new RecordingStream();
        using (var queue = new ConsoleQueue(new LogQueues.Monitor("audit"), capacity: 1, blockWhenFull: true, new ConsoleOutput(output)))
        {
            // A blocking queue of one whose room a failure kept would wait here for good: the wait times out instead.
            await Task.Run(() =>
            {
                for (var i = 0; i < 5; i++)
                {
                    queue.Emit(new Unformattable());
                }

                queue.Emit(Event(0, 7));
            }).WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal([(0, 7)], output.Lines());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Pending_bytes_are_bounded_a_dropping_queue_drops_a_line_past_the_bound_and_a_blocking_one_waits(bool blockWhenFull)
    {
        // Capacity 10: 10 lines, or 1 MB pending (the bound's floor), whichever comes first.
        using var gate = new ManualResetEventSlim();
        var output = new RecordingStream { Gate = gate };
        var monitor = new LogQueues.Monitor(blockWhenFull ? "audit" : "logs");
        var big = Task.CompletedTask;
        using (var queue = new ConsoleQueue(monitor, capacity: 10, blockWhenFull, new ConsoleOutput(output)))
        {
            try
            {
                queue.Emit(Event(0, 0));
                Assert.True(output.Entered.Wait(TimeSpan.FromSeconds(10)), "the writer never wrote");
                // The writer is stuck in its write; four lines of ~300 KB: three fit in 1 MB, the fourth does not.
                big = Task.Run(() =>
                {
                    for (var n = 1; n <= 4; n++)
                    {
                        queue.Emit(Event(0, n, new string('x', 300_000)));
                    }
                });
                if (!blockWhenFull)
                {
                    await big.WaitAsync(TimeSpan.FromSeconds(10)); // a dropping queue does not wait for the stalled writer
                    Assert.Equal(1, monitor.Dropped().Value);
                }
            }
            finally
            {
                gate.Set(); // whatever was asserted, the writer must not stay stuck, or disposal would wait for it
            }

            await big.WaitAsync(TimeSpan.FromSeconds(10)); // a blocking queue goes on once the writer has made room
        }

        int[] written = blockWhenFull ? [0, 1, 2, 3, 4] : [0, 1, 2, 3];
        Assert.Equal(written, output.Lines().Select(l => l.N));
        Assert.Equal(blockWhenFull ? 0 : 1, monitor.Dropped().Value);
    }

    [Fact]
    public async Task Two_queues_sharing_one_writer_are_written_by_that_one_thread_which_wakes_for_either()
    {
        var auditOutput = new RecordingStream();
        var logsOutput = new RecordingStream();
        var auditMonitor = new LogQueues.Monitor("audit");
        var logsMonitor = new LogQueues.Monitor("logs");
        var writer = new ConsoleWriter("test log writer");
        var audit = new ConsoleQueue(auditMonitor, 64, blockWhenFull: true, new ConsoleOutput(auditOutput), writer);
        var logs = new ConsoleQueue(logsMonitor, 100_000, blockWhenFull: false, new ConsoleOutput(logsOutput), writer);
        writer.Start(audit, logs);
        using (new ConsoleQueues("MsiProxy.Audit", audit, logs, writer))
        {
            // Caught asleep, the writer wakes for a line in either queue, the second as well as the first.
            await ParkedAsync(writer);
            logs.Emit(Event(0, 0));
            await WrittenAsync(logsOutput, 1);
            await ParkedAsync(writer);
            audit.Emit(Event(0, 0));
            await WrittenAsync(auditOutput, 1);
            Parallel.Invoke(() => Produce(audit, 2, 2_000), () => Produce(logs, 2, 2_000));
        }

        Assert.Equal(1 + 4_000, auditOutput.Lines().Count);
        Assert.Equal(0, auditMonitor.Dropped().Value);
        Assert.Equal(1 + 4_000, logsOutput.Lines().Count + logsMonitor.Dropped().Value);
        // Every write came from one thread, neither a producer's nor the test's.
        var writers = auditOutput.Threads.Concat(logsOutput.Threads).Distinct().ToList();
        Assert.Single(writers);
        Assert.Equal("test log writer", writers[0]);
    }

    [Fact]
    public async Task Queues_sharing_a_writer_disposed_while_producers_run_lose_no_audit_event_and_count_every_other()
    {
        var output = new RecordingStream();
        var shared = new ConsoleOutput(output);
        var auditMonitor = new LogQueues.Monitor("audit");
        var logsMonitor = new LogQueues.Monitor("logs");
        var writer = new ConsoleWriter("test log writer");
        // A small blocking audit queue: producers wait for room when disposal begins, and must be let go.
        var audit = new ConsoleQueue(auditMonitor, 8, blockWhenFull: true, shared, writer);
        var logs = new ConsoleQueue(logsMonitor, 8, blockWhenFull: false, shared, writer);
        writer.Start(audit, logs);
        var queues = new ConsoleQueues("MsiProxy.Audit", audit, logs, writer);
        using var halfway = new CountdownEvent(4);
        var producers = Enumerable.Range(0, 4).Select(p => Task.Run(() =>
        {
            var queue = p % 2 == 0 ? audit : logs;
            for (var n = 0; n < 3_000; n++)
            {
                queue.Emit(Event(p, n));
                if (n == 1_000)
                {
                    halfway.Signal();
                }
            }
        })).ToArray();
        Assert.True(halfway.Wait(TimeSpan.FromSeconds(30)), "the producers never got half-way");
        queues.Dispose();
        await Task.WhenAll(producers).WaitAsync(TimeSpan.FromSeconds(30));

        var lines = output.Lines();
        Assert.Equal(2 * 3_000, lines.Count(l => l.Producer % 2 == 0));
        Assert.Equal(0, auditMonitor.Dropped().Value);
        Assert.Equal(2 * 3_000, lines.Count(l => l.Producer % 2 == 1) + logsMonitor.Dropped().Value);
        Assert.Equal(lines.Count, lines.Distinct().Count());
    }

    /// <summary>Waits (at most 10 s) until the writer sleeps, waiting for a line.</summary>
    private static async Task ParkedAsync(ConsoleWriter writer)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!writer.IsParked)
        {
            Assert.True(DateTime.UtcNow < deadline, "the writer never parked");
            await Task.Delay(1);
        }
    }

    /// <summary>Waits (at most 10 s) until <paramref name="output"/> holds <paramref name="lines"/> lines.</summary>
    private static async Task WrittenAsync(RecordingStream output, int lines)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (output.Lines().Count < lines)
        {
            Assert.True(DateTime.UtcNow < deadline, $"not written within 10 s: {output.Lines().Count} of {lines} lines");
            await Task.Delay(5);
        }
    }

    private static void Produce(ConsoleQueue queue, int producers, int each) =>
        Parallel.For(0, producers, new ParallelOptions { MaxDegreeOfParallelism = producers }, p =>
        {
            for (var n = 0; n < each; n++)
            {
                queue.Emit(Event(p, n));
            }
        });

    private static LogEvent Event(int producer, int n, string padding = "") =>
        new(DateTimeOffset.UnixEpoch, LogEventLevel.Information, null, Template,
            [new LogEventProperty("N", new ScalarValue(n)), new LogEventProperty("Producer", new ScalarValue(producer)), new LogEventProperty("Padding", new ScalarValue(padding))]);

    /// <summary>A line whose formatting fails half-way.</summary>
    private readonly struct Unformattable : IConsoleLine
    {
        public void WriteTo(JsonLines lines, MemoryStream output)
        {
            output.Write("{\"half\":"u8);
            throw new InvalidOperationException("cannot be formatted");
        }
    }

    /// <summary>Standard output's stand-in: records the bytes and how many writes brought them.</summary>
    private sealed class RecordingStream : Stream
    {
        private readonly MemoryStream _bytes = new();
        private readonly HashSet<string> _threads = [];
        private int _writes;

        public TimeSpan Delay { get; init; }

        /// <summary>When set, each write waits for it (a stalled reader of standard output).</summary>
        public ManualResetEventSlim? Gate { get; init; }

        /// <summary>Set once a write has begun.</summary>
        public ManualResetEventSlim Entered { get; } = new();

        public int Writes => Volatile.Read(ref _writes);

        /// <summary>The names of the threads that wrote (unnamed ones by id).</summary>
        public IReadOnlyList<string> Threads
        {
            get
            {
                lock (_bytes)
                {
                    return [.. _threads];
                }
            }
        }

        public List<(int Producer, int N)> Lines()
        {
            string text;
            lock (_bytes)
            {
                text = Encoding.UTF8.GetString(_bytes.ToArray());
            }

            Assert.True(text.Length == 0 || text.EndsWith('\n'), "the output ends inside a line");
            return [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line =>
            {
                using var json = JsonDocument.Parse(line);
                return (json.RootElement.GetProperty("Producer").GetInt32(), json.RootElement.GetProperty("N").GetInt32());
            })];
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (Delay > TimeSpan.Zero)
            {
                Thread.Sleep(Delay); // a slow reader of standard output, so that a small queue overflows
            }

            Entered.Set();
            Gate?.Wait();

            lock (_bytes)
            {
                _bytes.Write(buffer);
                _threads.Add(Thread.CurrentThread.Name ?? $"unnamed {Environment.CurrentManagedThreadId}");
            }

            Interlocked.Increment(ref _writes);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
