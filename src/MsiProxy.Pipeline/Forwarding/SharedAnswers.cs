using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;

namespace MsiProxy.Forwarding;

/// <summary>
/// Identical forwarded requests share one upstream call, and its successful answer for a few seconds
/// (<c>MsiProxy:Forwarding:SharedAnswerDuration</c>): instance metadata is the VM's, the same for every caller, so a
/// client polling it in a loop costs the upstream — and its neighbours' share of IMDS — almost nothing. Errors are never
/// kept; callers joining a call in flight get its answer, whatever it is.
/// </summary>
internal sealed class SharedAnswers(IOptionsMonitor<MsiProxyOptions> options, TimeProvider time)
{
    private const int MaxEntries = 1_000;

    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <returns>The answer, and whether it came from another request's call.</returns>
    public async Task<(UpstreamResponse Response, bool Shared)> GetAsync(string target, Func<Task<UpstreamResponse>> fetch)
    {
        var duration = options.CurrentValue.Forwarding.SharedAnswerDuration;
        if (duration <= TimeSpan.Zero)
        {
            return (await fetch().ConfigureAwait(false), false);
        }

        var now = time.GetUtcNow();
        if (_entries.TryGetValue(target, out var existing) && (!existing.Answer.IsCompleted || existing.ExpiresAt > now))
        {
            return (await existing.Answer.ConfigureAwait(false), true);
        }

        var mine = new Entry(new TaskCompletionSource<UpstreamResponse>(TaskCreationOptions.RunContinuationsAsynchronously));
        var entry = existing is null ? _entries.GetOrAdd(target, mine) : _entries.TryUpdate(target, mine, existing) ? mine : _entries[target];
        if (!ReferenceEquals(entry, mine))
        {
            return (await entry.Answer.ConfigureAwait(false), true);
        }

        if (_entries.Count > MaxEntries)
        {
            Trim(now);
        }

        UpstreamResponse response;
        try
        {
            response = await fetch().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _entries.TryRemove(new KeyValuePair<string, Entry>(target, mine));
            mine.Source.SetException(ex);
            throw;
        }

        if (response.IsSuccess)
        {
            mine.ExpiresAt = time.GetUtcNow() + duration;
        }
        else
        {
            _entries.TryRemove(new KeyValuePair<string, Entry>(target, mine));
        }

        mine.Source.SetResult(response);
        return (response, false);
    }

    private void Trim(DateTimeOffset now)
    {
        foreach (var (key, entry) in _entries)
        {
            if (entry.Answer.IsCompleted && entry.ExpiresAt <= now)
            {
                _entries.TryRemove(new KeyValuePair<string, Entry>(key, entry));
            }
        }
    }

    private sealed class Entry(TaskCompletionSource<UpstreamResponse> source)
    {
        public TaskCompletionSource<UpstreamResponse> Source { get; } = source;
        public Task<UpstreamResponse> Answer => Source.Task;
        public DateTimeOffset ExpiresAt { get; set; } = DateTimeOffset.MaxValue;
    }
}
