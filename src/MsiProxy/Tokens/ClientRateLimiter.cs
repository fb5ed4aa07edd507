using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;

namespace MsiProxy.Tokens;

/// <summary>
/// A token bucket per registered client, spent only by cache misses: one noisy container cannot use up the
/// node's IMDS budget for everyone else. Hits are never limited — they cost the upstream nothing.
/// </summary>
public sealed class ClientRateLimiter(IOptionsMonitor<MsiProxyOptions> options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    /// <summary>Takes one token for <paramref name="client"/>; on refusal returns how long until one is available.</summary>
    public bool TryAcquire(string client, out TimeSpan retryAfter)
    {
        var limits = options.CurrentValue.ClientRateLimit;
        retryAfter = TimeSpan.Zero;
        if (limits.RequestsPerSecond <= 0)
        {
            return true;
        }

        var now = time.GetTimestamp();
        var bucket = _buckets.GetOrAdd(client, static (_, state) => new Bucket(state.Burst, state.Now), (Burst: limits.Burst, Now: now));
        lock (bucket)
        {
            var elapsed = time.GetElapsedTime(bucket.LastRefill, now).TotalSeconds;
            bucket.Tokens = Math.Min(limits.Burst, bucket.Tokens + (elapsed * limits.RequestsPerSecond));
            bucket.LastRefill = now;
            if (bucket.Tokens >= 1)
            {
                bucket.Tokens -= 1;
                return true;
            }

            retryAfter = TimeSpan.FromSeconds((1 - bucket.Tokens) / limits.RequestsPerSecond);
            return false;
        }
    }

    /// <summary>Forget a client's bucket when it deregisters.</summary>
    public void Forget(string client) => _buckets.TryRemove(client, out _);

    private sealed class Bucket(int burst, long createdAt)
    {
        public double Tokens = burst;
        public long LastRefill = createdAt;
    }
}
