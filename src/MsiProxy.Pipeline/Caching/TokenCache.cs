using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Responses;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams;

namespace MsiProxy.Caching;

internal enum CacheOutcome
{
    /// <summary>Served from the cache.</summary>
    Hit,

    /// <summary>Served from the cache, and a background refresh was started.</summary>
    HitRefreshing,

    /// <summary>Nothing usable: waited for an upstream fetch (possibly one another caller started).</summary>
    Miss,

    /// <summary><c>bypass_cache=true</c>, or the cached token is the one the client says was revoked: fetched upstream and replaced the entry.</summary>
    Bypass,
}

/// <summary>
/// A cache answer, exactly one of two things: a token (<see cref="Token"/>), or — when none could be cached — the
/// upstream's own answer to pass on as it came (<see cref="PassThrough"/>: an error, the proxy's 429/502/503/504, or a
/// 200 whose body is not a cacheable token; its status says which, not the name). The two factories are the only way to
/// make one, so a result never holds both or neither.
/// </summary>
internal readonly struct CacheResult
{
    private CacheResult(CacheOutcome outcome, CachedToken? token, UpstreamResponse? passThrough, string? upstream)
    {
        Outcome = outcome;
        Token = token;
        PassThrough = passThrough;
        Upstream = upstream;
    }

    public CacheOutcome Outcome { get; }

    /// <summary>The token to serve; null exactly when <see cref="PassThrough"/> is set.</summary>
    public CachedToken? Token { get; }

    /// <summary>The upstream answer that holds no cacheable token; null exactly when <see cref="Token"/> is set.</summary>
    public UpstreamResponse? PassThrough { get; }

    /// <summary>The upstream that answered the fetch this caller waited for (null for hits): the audit log names it.</summary>
    public string? Upstream { get; }

    [MemberNotNullWhen(true, nameof(Token))]
    [MemberNotNullWhen(false, nameof(PassThrough))]
    public bool HasToken => Token is not null;

    public static CacheResult Served(CacheOutcome outcome, CachedToken token, string? upstream = null) =>
        new(outcome, token ?? throw new ArgumentNullException(nameof(token)), null, upstream);

    public static CacheResult NotCached(CacheOutcome outcome, UpstreamResponse answer) =>
        new(outcome, null, answer ?? throw new ArgumentNullException(nameof(answer)), answer.Upstream);
}

/// <summary>Why the cache asks for a token: a caller is waiting (short budget) or it refreshes ahead (long budget).</summary>
internal enum FetchPurpose
{
    Request,
    Refresh,
}

/// <summary>Fetches the entry's token upstream; <paramref name="bypassUpstreamCache"/> asks the upstream for a new one too.</summary>
internal delegate Task<UpstreamResponse> TokenFetcher(FetchPurpose purpose, bool bypassUpstreamCache);

/// <summary>How a request wants the cache to treat its entry.</summary>
/// <param name="Bypass"><c>bypass_cache=true</c>: fetch whatever is cached.</param>
/// <param name="RevokedSha256">MSAL's <c>token_sha256_to_refresh</c>: fetch anew only if the cached token is that one.</param>
internal readonly record struct CacheDirective(bool Bypass, byte[]? RevokedSha256 = null);

/// <summary>
/// Token cache with single-flight fetches, refresh-ahead and stale-on-error, bounded in size. Callers are
/// authorised before they get here: the cache itself never decides who may have a token.
/// </summary>
internal sealed class TokenCache
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<TokenCacheKey, Entry> _entries = new();
    private readonly TimeProvider _time;
    private readonly IOptionsMonitor<MsiProxyOptions> _options;
    private readonly MsiProxyTelemetry _telemetry;
    private readonly ILogger<TokenCache> _logger;
    private int _evicting;

    public TokenCache(TimeProvider time, IOptionsMonitor<MsiProxyOptions> options, MsiProxyTelemetry telemetry, ILogger<TokenCache> logger)
    {
        _time = time;
        _options = options;
        _telemetry = telemetry;
        _logger = logger;
    }

    public int Count => _entries.Count;

    private CacheOptions Options => _options.CurrentValue.Cache;

    /// <summary>
    /// True when a request for <paramref name="key"/> would start an upstream call: nothing usable is cached and no
    /// fetch is under way. A caller that would join a fetch in flight costs the upstream nothing.
    /// </summary>
    public bool WouldFetch(TokenCacheKey key)
    {
        if (!_entries.TryGetValue(key, out var entry))
        {
            return true;
        }

        lock (entry.Gate)
        {
            return entry.InFlight is null
                && (entry.Token is not { } token || _time.GetUtcNow() >= token.ExpiresOn - Options.MinimumRemainingLifetime);
        }
    }

    public async ValueTask<CacheResult> GetAsync(TokenCacheKey key, CacheDirective directive, TokenFetcher fetch, CancellationToken cancellationToken)
    {
        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        Task<FetchResult> pending;
        CacheOutcome outcome;
        lock (entry.Gate)
        {
            var now = _time.GetUtcNow();
            entry.LastAccess = now;
            var current = entry.Token;
            var usable = current is not null && now < current.ExpiresOn - Options.MinimumRemainingLifetime;
            var bypassCache = directive.Bypass || (directive.RevokedSha256 is { } revoked && current is not null && current.HasSha256(revoked));
            if (usable && !bypassCache)
            {
                entry.Hits++;
                if (now < current!.RefreshAt || now < entry.NextRefreshAt || entry.InFlight is not null)
                {
                    return CacheResult.Served(CacheOutcome.Hit, current);
                }

                entry.InFlight = FetchAsync(key, entry, fetch, FetchPurpose.Refresh, bypassUpstreamCache: false);
                return CacheResult.Served(CacheOutcome.HitRefreshing, current);
            }

            // A bypass joins a fetch already under way: it is just as fresh.
            entry.InFlight ??= FetchAsync(key, entry, fetch, FetchPurpose.Request, bypassCache);
            pending = entry.InFlight;
            outcome = bypassCache ? CacheOutcome.Bypass : CacheOutcome.Miss;
        }

        if (_entries.Count > Options.MaxEntries)
        {
            EvictOverflow();
        }

        var result = await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
        return result.Token is { } fetched
            ? CacheResult.Served(outcome, fetched, result.Response.Upstream)
            : CacheResult.NotCached(outcome, result.Response);
    }

    /// <summary>
    /// Starts a background fetch for <paramref name="key"/> unless a usable token or a fetch already exists, so a
    /// client's first request is a hit. Returns whether a fetch was started.
    /// </summary>
    public bool Prefetch(TokenCacheKey key, TokenFetcher fetch)
    {
        var entry = _entries.GetOrAdd(key, static _ => new Entry());
        lock (entry.Gate)
        {
            var now = _time.GetUtcNow();
            if ((entry.Token is { } token && now < token.ExpiresOn - Options.MinimumRemainingLifetime) || entry.InFlight is not null)
            {
                return false;
            }

            entry.LastAccess = now;
            entry.InFlight = FetchAsync(key, entry, fetch, FetchPurpose.Refresh, bypassUpstreamCache: false);
            return true;
        }
    }

    private async Task<FetchResult> FetchAsync(TokenCacheKey key, Entry entry, TokenFetcher fetch, FetchPurpose purpose, bool bypassUpstreamCache)
    {
        // Never run the fetch under the entry's lock, and never on the caller's cancellation: others may be waiting.
        await Task.Yield();
        UpstreamResponse response;
        try
        {
            response = await fetch(purpose, bypassUpstreamCache).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _logger.LogError(ex, "Token fetch for {CacheKey} failed unexpectedly", key);
            response = new UpstreamResponse(StatusCodes.Status502BadGateway,
                ImdsErrors.Body("bad_gateway", "The upstream request failed"), ImdsErrors.JsonContentType)
            { ProxyError = "unexpected" };
        }

        var now = _time.GetUtcNow();
        CachedToken? token = null;
        if (response.IsSuccess && !CachedToken.TryCreate(response.Body, now, Options.RefreshAfter, out token, out var why))
        {
            _logger.LogWarning("Upstream answered 200 for {CacheKey} but the body is not cacheable: {Reason}", key, why);
            token = null;
        }

        lock (entry.Gate)
        {
            entry.InFlight = null;
            if (token is not null)
            {
                entry.Token = token;
                entry.NextRefreshAt = default;
            }
            else if (purpose == FetchPurpose.Refresh)
            {
                entry.NextRefreshAt = now + Options.RefreshRetryInterval;
            }
        }

        if (purpose == FetchPurpose.Refresh)
        {
            _telemetry.CacheRefreshes.Add(1, new KeyValuePair<string, object?>("result", token is null ? "failure" : "success"));
        }

        if (token is null && response.IsSuccess)
        {
            // A 200 we cannot cache is still the caller's answer.
            return new FetchResult(null, response);
        }

        if (token is null && entry.Token is null)
        {
            // Nothing was ever cached here: don't keep an empty entry around for a key that only fails.
            _entries.TryRemove(new KeyValuePair<TokenCacheKey, Entry>(key, entry));
        }

        return new FetchResult(token, response);
    }

    /// <summary>Removes entries whose key matches; returns how many.</summary>
    public int RemoveWhere(Func<TokenCacheKey, bool> predicate, string reason)
    {
        var removed = 0;
        foreach (var (key, entry) in _entries)
        {
            if (predicate(key) && _entries.TryRemove(new KeyValuePair<TokenCacheKey, Entry>(key, entry)))
            {
                removed++;
            }
        }

        if (removed > 0)
        {
            _telemetry.CacheEvictions.Add(removed, new KeyValuePair<string, object?>("reason", reason));
        }

        return removed;
    }

    public IReadOnlyList<CacheEntryInfo> Snapshot()
    {
        var list = new List<CacheEntryInfo>(_entries.Count);
        foreach (var (key, entry) in _entries)
        {
            lock (entry.Gate)
            {
                if (entry.Token is { } token)
                {
                    list.Add(new CacheEntryInfo(key, token.ExpiresOn, token.FetchedAt, token.RefreshAt, entry.Hits, entry.LastAccess));
                }
            }
        }

        return list;
    }

    /// <summary>The soonest expiry among cached tokens (an operator alert: nothing should get close).</summary>
    public DateTimeOffset? EarliestExpiry()
    {
        DateTimeOffset? earliest = null;
        foreach (var entry in _entries.Values)
        {
            if (entry.Token is { } token && (earliest is null || token.ExpiresOn < earliest))
            {
                earliest = token.ExpiresOn;
            }
        }

        return earliest;
    }

    /// <summary>Evicts the least recently used tenth of the entries once the cache is over its bound.</summary>
    private void EvictOverflow()
    {
        if (Interlocked.Exchange(ref _evicting, 1) == 1)
        {
            return;
        }

        try
        {
            var excess = _entries.Count - Options.MaxEntries;
            if (excess <= 0)
            {
                return;
            }

            var batch = Math.Max(excess, Options.MaxEntries / 10);
            var victims = _entries
                .Where(pair => pair.Value.InFlight is null)
                .OrderBy(pair => pair.Value.LastAccess)
                .Take(batch)
                .ToList();
            foreach (var victim in victims)
            {
                _entries.TryRemove(victim);
            }

            _telemetry.CacheEvictions.Add(victims.Count, new KeyValuePair<string, object?>("reason", "capacity"));
        }
        finally
        {
            Volatile.Write(ref _evicting, 0);
        }
    }

    private sealed record FetchResult(CachedToken? Token, UpstreamResponse Response);

    private sealed class Entry
    {
        public readonly Lock Gate = new();
        public CachedToken? Token;
        public Task<FetchResult>? InFlight;
        public DateTimeOffset NextRefreshAt;
        public DateTimeOffset LastAccess;
        public long Hits;
    }
}

internal sealed record CacheEntryInfo(TokenCacheKey Key, DateTimeOffset ExpiresOn, DateTimeOffset FetchedAt, DateTimeOffset RefreshAt, long Hits, DateTimeOffset LastAccess);
