using System.Text.RegularExpressions;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Caching;
using MsiProxy.Configuration;
using MsiProxy.Upstreams;
using static MsiProxy.UnitTests.Caching.CacheTestKit;

namespace MsiProxy.UnitTests.Caching;

/// <summary>TokenCache on a fake clock: no test here sleeps to make time pass.</summary>
public sealed class TokenCacheTests
{
    private static readonly TimeSpan Day = TimeSpan.FromHours(24);

    private readonly FakeTimeProvider _time = new(Start);

    /// <summary>An upstream that mints token-1, token-2… living <paramref name="lifetime"/> from the fake now.</summary>
    private sealed class Upstream(FakeTimeProvider time, TimeSpan lifetime)
    {
        private int _calls;
        public int Calls => Volatile.Read(ref _calls);
        public List<FetchPurpose> Purposes { get; } = [];
        public Func<int, UpstreamResponse>? Override { get; set; }

        public Task<UpstreamResponse> Fetch(FetchPurpose purpose, bool bypass)
        {
            var call = Interlocked.Increment(ref _calls);
            lock (Purposes)
            {
                Purposes.Add(purpose);
            }

            return Task.FromResult(Override?.Invoke(call) ?? Ok(TokenJson($"token-{call}", time.GetUtcNow(), lifetime)));
        }
    }

    [Fact]
    public async Task A_token_is_fetched_once_and_then_served_from_the_cache_until_its_expiry_floor()
    {
        var cache = CreateCache(_time, new CacheOptions { RefreshAfter = 1.0 });
        var upstream = new Upstream(_time, Day);

        var first = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Miss, first.Outcome);
        Assert.Equal("token-1", AccessToken(first.Token!, _time.GetUtcNow()));

        _time.Advance(Day - TimeSpan.FromMinutes(5) - TimeSpan.FromSeconds(1));
        var late = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Hit, late.Outcome);
        Assert.Equal("token-1", AccessToken(late.Token!, _time.GetUtcNow()));
        Assert.Equal(1, upstream.Calls);

        // Less than five minutes left: the SDKs would treat it as expired, so the cache does too.
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(cache.WouldFetch(Key()));
        var renewed = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Miss, renewed.Outcome);
        Assert.Equal("token-2", AccessToken(renewed.Token!, _time.GetUtcNow()));
        Assert.Equal(2, upstream.Calls);
    }

    [Fact]
    public async Task The_floor_is_configurable()
    {
        var cache = CreateCache(_time, new CacheOptions { RefreshAfter = 1.0, MinimumRemainingLifetime = TimeSpan.FromMinutes(1) });
        var upstream = new Upstream(_time, Day);
        await cache.GetAsync(Key(), default, upstream.Fetch, default);

        _time.Advance(Day - TimeSpan.FromMinutes(4));
        Assert.Equal(CacheOutcome.Hit, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        _time.Advance(TimeSpan.FromMinutes(3) + TimeSpan.FromSeconds(1));
        Assert.Equal(CacheOutcome.Miss, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        Assert.Equal(2, upstream.Calls);
    }

    [Fact]
    public async Task A_token_that_is_already_past_the_floor_or_expired_is_never_cached()
    {
        var cache = CreateCache(_time);
        var upstream = new Upstream(_time, TimeSpan.FromMinutes(4));
        await cache.GetAsync(Key(), default, upstream.Fetch, default);
        var again = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Miss, again.Outcome);
        Assert.Equal(2, upstream.Calls);

        // An expires_on in the past is not a cacheable token: the answer passes through and nothing is kept.
        upstream.Override = call => Ok(TokenJson($"old-{call}", _time.GetUtcNow() - Day, TimeSpan.FromHours(1)));
        var past = await cache.GetAsync(Key("https://vault.azure.net"), default, upstream.Fetch, default);
        Assert.False(past.HasToken);
        Assert.Null(past.Token);
        Assert.Equal(200, past.PassThrough.Status); // a 200 passed on as it came: the type names it an answer to pass through, not a failure
        Assert.Equal("http://127.0.0.1:1", past.Upstream);
        Assert.DoesNotContain(cache.Snapshot(), e => e.Key.Resource == "https://vault.azure.net");
    }

    [Fact]
    public async Task A_hit_rewrites_only_expires_in_from_expires_on()
    {
        foreach (var quoted in new[] { true, false })
        {
            var cache = CreateCache(_time);
            var issuedAt = _time.GetUtcNow();
            var json = TokenJson("abc.def.ghi", issuedAt, Day, quoted);
            var key = Key(quoted ? "https://a/" : "https://b/");
            await cache.GetAsync(key, default, (_, _) => Task.FromResult(Ok(json)), default);

            _time.Advance(TimeSpan.FromSeconds(1000));
            var hit = await cache.GetAsync(key, default, (_, _) => throw new InvalidOperationException("no fetch expected"), default);
            Assert.Equal(CacheOutcome.Hit, hit.Outcome);
            var served = Body(hit.Token!, _time.GetUtcNow());

            var q = quoted ? "\"" : "";
            var expected = json.Replace($"\"expires_in\":{q}86400{q}", $"\"expires_in\":{q}85400{q}", StringComparison.Ordinal);
            Assert.NotEqual(json, expected);
            Assert.Equal(expected, served);
            // ext_expires_in (and everything else) is exactly as the upstream sent it.
            Assert.Matches(new Regex($"\"ext_expires_in\":{q}86400{q}"), served);
        }
    }

    [Fact]
    public async Task Refresh_ahead_serves_the_cached_token_while_one_background_fetch_replaces_it()
    {
        var cache = CreateCache(_time); // refresh after half the lifetime
        var upstream = new Upstream(_time, Day);
        await cache.GetAsync(Key(), default, upstream.Fetch, default);

        _time.Advance(TimeSpan.FromHours(11));
        Assert.Equal(CacheOutcome.Hit, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        Assert.Equal(1, upstream.Calls);

        _time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        var refreshing = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.HitRefreshing, refreshing.Outcome);
        Assert.Equal("token-1", AccessToken(refreshing.Token!, _time.GetUtcNow()));

        await Eventually(() => cache.Snapshot().Single().FetchedAt == _time.GetUtcNow());
        Assert.Equal(2, upstream.Calls);
        Assert.Equal(FetchPurpose.Refresh, upstream.Purposes[1]);
        var after = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Hit, after.Outcome);
        Assert.Equal("token-2", AccessToken(after.Token!, _time.GetUtcNow()));
        Assert.Equal(2, upstream.Calls);
    }

    [Fact]
    public async Task Stale_on_error_keeps_serving_until_the_floor_then_fails_like_a_miss()
    {
        var options = new CacheOptions { RefreshRetryInterval = TimeSpan.FromMinutes(1) };
        var telemetry = CreateTelemetry();
        using var refreshes = new MetricCollector<long>(telemetry.CacheRefreshes);
        var cache = CreateCache(_time, options, telemetry);
        var upstream = new Upstream(_time, Day);
        await cache.GetAsync(Key(), default, upstream.Fetch, default);
        upstream.Override = _ => Error(503);

        _time.Advance(TimeSpan.FromHours(13));
        Assert.Equal(CacheOutcome.HitRefreshing, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        await Eventually(() => refreshes.GetMeasurementSnapshot().Count == 1);
        Assert.Equal("failure", refreshes.LastMeasurement!.Tags["result"]);

        // Within the retry interval: plain hits, no new refresh.
        var hit = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Hit, hit.Outcome);
        Assert.Equal("token-1", AccessToken(hit.Token!, _time.GetUtcNow()));
        Assert.Equal(2, upstream.Calls);

        // After it, the next hit tries again (and still serves the stale-but-valid token).
        _time.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        Assert.Equal(CacheOutcome.HitRefreshing, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        await Eventually(() => refreshes.GetMeasurementSnapshot().Count == 2);
        Assert.Equal(3, upstream.Calls);

        // At the floor the token is no longer served: the caller waits for a fetch and gets its failure.
        _time.SetUtcNow(Start + Day - TimeSpan.FromMinutes(5));
        var miss = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Miss, miss.Outcome);
        Assert.Null(miss.Token);
        Assert.Equal(503, miss.PassThrough!.Status);
    }

    [Fact]
    public async Task Over_its_bound_the_cache_evicts_the_least_recently_used_entry()
    {
        var cache = CreateCache(_time, new CacheOptions { MaxEntries = 3 });
        var upstream = new Upstream(_time, Day);
        foreach (var resource in new[] { "https://one/", "https://two/", "https://three/" })
        {
            await cache.GetAsync(Key(resource), default, upstream.Fetch, default);
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(CacheOutcome.Hit, (await cache.GetAsync(Key("https://one/"), default, upstream.Fetch, default)).Outcome);
        _time.Advance(TimeSpan.FromSeconds(1));
        await cache.GetAsync(Key("https://four/"), default, upstream.Fetch, default);

        Assert.Equal(3, cache.Count);
        Assert.Equal(["https://four/", "https://one/", "https://three/"], cache.Snapshot().Select(e => e.Key.Resource).Order().ToArray());
        Assert.Equal(CacheOutcome.Miss, (await cache.GetAsync(Key("https://two/"), default, upstream.Fetch, default)).Outcome);
    }

    [Fact]
    public async Task Many_concurrent_misses_make_exactly_one_upstream_call()
    {
        var cache = CreateCache(_time);
        var release = new TaskCompletionSource<UpstreamResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        Task<UpstreamResponse> Fetch(FetchPurpose _, bool bypass)
        {
            Interlocked.Increment(ref calls);
            return release.Task;
        }

        var callers = Enumerable.Range(0, 200).Select(_ => Task.Run(() => cache.GetAsync(Key(), default, Fetch, default).AsTask())).ToArray();
        await Eventually(() => Volatile.Read(ref calls) == 1);
        Assert.False(cache.WouldFetch(Key())); // joining the fetch under way costs the upstream nothing
        Assert.All(callers, c => Assert.False(c.IsCompleted));
        release.SetResult(Ok(TokenJson("shared", _time.GetUtcNow(), Day)));

        var results = await Task.WhenAll(callers);
        Assert.Equal(1, calls);
        Assert.All(results, r => Assert.Equal("shared", AccessToken(r.Token!, _time.GetUtcNow())));
    }

    [Fact]
    public async Task A_failed_fetch_is_shared_by_the_callers_waiting_on_it_but_not_cached()
    {
        var cache = CreateCache(_time);
        var release = new TaskCompletionSource<UpstreamResponse>(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = 0;
        Task<UpstreamResponse> Fetch(FetchPurpose _, bool bypass) => Interlocked.Increment(ref calls) == 1 ? release.Task : Task.FromResult(Ok(TokenJson("later", _time.GetUtcNow(), Day)));

        // All fifty join before the fetch fails: called one after another on this thread, each finds the fetch in flight.
        // (Started on the thread pool, some arrived only after the failure, and rightly fetched again.) The fetch itself
        // starts on the thread pool, so it is waited for, not assumed.
        var callers = Enumerable.Range(0, 50).Select(_ => cache.GetAsync(Key(), default, Fetch, default).AsTask()).ToArray();
        await Eventually(() => Volatile.Read(ref calls) == 1);
        Assert.False(cache.WouldFetch(Key()));
        Assert.All(callers, c => Assert.False(c.IsCompleted));
        release.SetResult(Error(500));
        var results = await Task.WhenAll(callers);
        Assert.All(results, r => Assert.Equal(500, r.PassThrough!.Status));
        Assert.Equal(1, calls);
        Assert.Empty(cache.Snapshot());

        var next = await cache.GetAsync(Key(), default, Fetch, default);
        Assert.Equal(2, calls);
        Assert.Equal("later", AccessToken(next.Token!, _time.GetUtcNow()));
    }

    [Fact]
    public async Task Bypass_goes_upstream_and_replaces_the_entry()
    {
        var cache = CreateCache(_time);
        var upstream = new Upstream(_time, Day);
        await cache.GetAsync(Key(), default, upstream.Fetch, default);

        var bypass = await cache.GetAsync(Key(), new CacheDirective(Bypass: true), upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Bypass, bypass.Outcome);
        Assert.Equal("token-2", AccessToken(bypass.Token!, _time.GetUtcNow()));
        Assert.Equal(2, upstream.Calls);

        var hit = await cache.GetAsync(Key(), default, upstream.Fetch, default);
        Assert.Equal(CacheOutcome.Hit, hit.Outcome);
        Assert.Equal("token-2", AccessToken(hit.Token!, _time.GetUtcNow()));
    }

    [Fact]
    public async Task Prefetch_starts_one_background_fetch_and_the_next_request_is_a_hit()
    {
        var cache = CreateCache(_time);
        var upstream = new Upstream(_time, Day);
        Assert.True(cache.Prefetch(Key(), upstream.Fetch));
        await Eventually(() => cache.Snapshot().Count == 1);
        Assert.False(cache.WouldFetch(Key()));
        Assert.False(cache.Prefetch(Key(), upstream.Fetch));
        Assert.Equal(CacheOutcome.Hit, (await cache.GetAsync(Key(), default, upstream.Fetch, default)).Outcome);
        Assert.Equal(1, upstream.Calls);
    }
}
