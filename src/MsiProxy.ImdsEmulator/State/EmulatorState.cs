using System.Collections.Concurrent;
using MsiProxy.ImdsEmulator.Limits;
using MsiProxy.ImdsEmulator.Tokens;

namespace MsiProxy.ImdsEmulator;

/// <summary>
/// Everything a running emulator knows and tests look at: scripted faults, the request log, counters and every
/// access token it issued. One instance per emulated VM; thread-safe.
/// </summary>
public sealed class EmulatorState
{
    private readonly ConcurrentQueue<RequestRecord> _requests = new();
    private readonly ConcurrentQueue<string> _issuedTokens = new();
    private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _sequence;

    public EmulatorState(EmulatorOptions? options = null, TimeProvider? timeProvider = null)
    {
        Options = options ?? new EmulatorOptions();
        Time = timeProvider ?? TimeProvider.System;
        Limiter = new IdentityLimiter(Options.Limits, Time);
        Identities = new IdentityResolver(Options);
        Tokens = new TokenCache(new TokenMinter(Options, Time), Time);
        foreach (var rule in Options.Faults)
        {
            Faults.Enqueue(rule);
        }
    }

    public EmulatorOptions Options { get; }

    public TimeProvider Time { get; }

    public FaultScript Faults { get; } = new();

    public EmulatorCounters Counters { get; } = new();

    /// <summary>Snapshot of the request log, oldest first.</summary>
    public IReadOnlyList<RequestRecord> Requests => [.. _requests];

    /// <summary>Every access_token string issued (cache hits repeat nothing), oldest first.</summary>
    public IReadOnlyList<string> IssuedTokens => [.. _issuedTokens];

    internal IdentityLimiter Limiter { get; }

    internal IdentityResolver Identities { get; }

    internal TokenCache Tokens { get; }

    /// <summary>Completes when the hosting server stops, so stalled requests let go.</summary>
    internal Task Stopping => _stopping.Task;

    /// <summary>Clears faults, log, counters, issued tokens, the token cache and the rate window.</summary>
    public void Reset()
    {
        Faults.Clear();
        _requests.Clear();
        _issuedTokens.Clear();
        Counters.Reset();
        Tokens.Clear();
        Limiter.Reset();
    }

    internal RequestRecord Log(
        string method, string path, string query, string rawTarget, IReadOnlyDictionary<string, string> headers, string callerAddress, int callerPort, int concurrency)
    {
        var record = new RequestRecord(
            Interlocked.Increment(ref _sequence), method, path, query, rawTarget, headers, callerAddress, callerPort, Time.GetUtcNow(), concurrency);
        _requests.Enqueue(record);
        return record;
    }

    internal void RecordIssued(string accessToken)
    {
        _issuedTokens.Enqueue(accessToken);
        Counters.TokenIssued();
    }

    internal void SignalStopping() => _stopping.TrySetResult();
}
