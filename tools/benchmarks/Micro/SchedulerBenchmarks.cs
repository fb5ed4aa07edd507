using System.Threading.RateLimiting;
using BenchmarkDotNet.Attributes;
using MsiProxy.Upstreams.Scheduling;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>
/// The upstream scheduler: a free slot (the common case — one lock, one lease); a slot that has to be waited for
/// (waiter, deadline timer, cancellation registration, then the grant when the holder releases); and an arrival behind
/// 50 waiting clients, whose wait estimate walks all 50 lanes, cancelled again (its CancellationTokenSource is part of
/// the cost). The clock moves a second per reading, so the rate never holds anything back and only the scheduler's
/// own work is measured.
/// </summary>
public class SchedulerBenchmarks
{
    private readonly List<Task<RateLimitLease>> _waiters = [];
    private UpstreamScheduler _free = null!;
    private UpstreamScheduler _oneSlot = null!;
    private UpstreamScheduler _crowded = null!;
    private RateLimitLease _holding = null!;
    private DateTimeOffset _deadline;

    [GlobalSetup]
    public void Setup()
    {
        var clock = new SecondPerReading();
        _deadline = DateTimeOffset.MaxValue.AddYears(-1);
        _free = new UpstreamScheduler(new UpstreamSchedulerOptions(), clock);
        _oneSlot = new UpstreamScheduler(new UpstreamSchedulerOptions(maxConcurrency: 1), clock);
        _holding = Completed(_oneSlot.AcquireAsync("holder", WorkPriority.Foreground, _deadline, CancellationToken.None));

        // Every slot taken for good; 50 clients wait.
        _crowded = new UpstreamScheduler(new UpstreamSchedulerOptions(maxConcurrency: 1), clock);
        _waiters.Add(_crowded.AcquireAsync("stuck", WorkPriority.Foreground, _deadline, CancellationToken.None).AsTask());
        for (var i = 0; i < 50; i++)
        {
            _waiters.Add(_crowded.AcquireAsync($"waiting-{i}", WorkPriority.Foreground, _deadline, CancellationToken.None).AsTask());
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _holding.Dispose();
        _free.Dispose();
        _oneSlot.Dispose();
        _crowded.Dispose();
        foreach (var waiter in _waiters)
        {
            waiter.Result.Dispose();
        }
    }

    [Benchmark(Baseline = true)]
    public bool Grant_free_slot_and_release()
    {
        using var lease = Completed(_free.AcquireAsync("10.0.0.2", WorkPriority.Foreground, _deadline, CancellationToken.None));
        return lease.IsAcquired;
    }

    [Benchmark]
    public bool Wait_then_grant_on_release()
    {
        var waiting = _oneSlot.AcquireAsync("10.0.0.2", WorkPriority.Foreground, _deadline, CancellationToken.None);
        _holding.Dispose();
        _holding = Completed(waiting);
        return _holding.IsAcquired;
    }

    [Benchmark]
    public bool Wait_behind_50_clients_then_cancel()
    {
        using var cancellation = new CancellationTokenSource();
        var waiting = _crowded.AcquireAsync("10.0.0.2", WorkPriority.Foreground, _deadline, cancellation.Token);
        cancellation.Cancel();
        return waiting.IsCanceled;
    }

    private static RateLimitLease Completed(ValueTask<RateLimitLease> pending) =>
        pending.IsCompleted ? pending.Result : throw new InvalidOperationException("expected a grant without waiting");

    /// <summary>Each timestamp reading is one second after the last: every start finds the rate window free.</summary>
    private sealed class SecondPerReading : TimeProvider
    {
        private long _now;

        public override long GetTimestamp() => Interlocked.Add(ref _now, TimestampFrequency);
    }
}
