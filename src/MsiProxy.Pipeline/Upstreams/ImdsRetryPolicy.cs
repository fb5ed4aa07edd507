using System.Net;
using MsiProxy.Configuration;
using Polly.CircuitBreaker;
using Polly.RateLimiting;
using Polly.Timeout;

namespace MsiProxy.Upstreams;

/// <summary>Whether to retry an upstream outcome, and after how long.</summary>
internal readonly record struct RetryDecision(bool Retry, TimeSpan Delay, string Reason)
{
    public static RetryDecision Stop(string reason) => new(false, TimeSpan.Zero, reason);
}

/// <summary>
/// The retry classes IMDS documents and the SDKs implement: 404 and 410 from the identity endpoint (IMDS is updating;
/// 410 for up to 70 s — elsewhere a 404 is an answer: no such key in the instance document),
/// 408, 429 and 5xx, connection failures and attempt timeouts — with exponential backoff and full jitter, honouring
/// (capped) <c>Retry-After</c>. 400, 401, 403 and other 4xx are design-time errors and never retried. No retry is
/// started that would end after the caller's budget: the caller is better served by the last real answer.
/// A 429 a client is waiting on is retried at most once — after the upstream's Retry-After when that is short, else not
/// at all, or after one backoff when it gave none (IMDS usually does not): every SDK retries a 429 itself, so retrying
/// on its behalf multiplied one throttled call into dozens. Background refreshes and
/// prefetches, which nobody retries on top of, keep the full schedule.
/// </summary>
internal sealed class ImdsRetryPolicy(ResilienceOptions options, Func<double> random)
{
    public RetryDecision Decide(int? status, Exception? exception, TimeSpan? retryAfter, int attempt,
        DateTimeOffset now, DateTimeOffset deadline, DateTimeOffset? firstGoneAt, bool clientWaiting, bool identityEndpoint = true)
    {
        var reason = status == StatusCodes.Status404NotFound && !identityEndpoint ? null : Classify(status, exception);
        if (reason is null)
        {
            return RetryDecision.Stop(status?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? exception?.GetType().Name ?? "none");
        }

        if (status == StatusCodes.Status429TooManyRequests && clientWaiting
            && (attempt > 0 || retryAfter is { } wait && wait > options.WaitingRetryAfterLimit))
        {
            return RetryDecision.Stop("429: the client retries");
        }

        if (status == (int)HttpStatusCode.Gone && firstGoneAt is { } goneSince && now - goneSince >= options.GoneWindow)
        {
            return RetryDecision.Stop("410 window exhausted");
        }

        var delay = retryAfter is { } after && after > TimeSpan.Zero
            ? (after > options.MaxRetryAfter ? options.MaxRetryAfter : after)
            : Backoff(attempt);
        if (now + delay >= deadline)
        {
            return RetryDecision.Stop("budget exhausted");
        }

        return new RetryDecision(true, delay, reason);
    }

    /// <summary>Exponential from <see cref="ResilienceOptions.BaseDelay"/>, full jitter in the upper half, capped.</summary>
    public TimeSpan Backoff(int attempt)
    {
        var exponential = options.BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 16));
        var capped = Math.Min(exponential, options.MaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds((capped / 2) + (random() * capped / 2));
    }

    /// <summary>The retry class of an outcome, or null when it must not be retried.</summary>
    public static string? Classify(int? status, Exception? exception) => (status, exception) switch
    {
        (_, BrokenCircuitException or RateLimiterRejectedException or NoUpstreamException) => null,
        (_, TimeoutRejectedException) => "timeout",
        (_, HttpRequestException) => "connection",
        (404, _) => "404",
        (408, _) => "408",
        (410, _) => "410",
        (429, _) => "429",
        (>= 500 and <= 599, _) => status.Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => null,
    };
}

/// <summary>No upstream is available (all failed their health checks): answered at once with 503.</summary>
internal sealed class NoUpstreamException() : Exception("No healthy upstream is available");
