using System.Text;
using BenchmarkDotNet.Attributes;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams;

namespace MsiProxy.Benchmarks.Micro;

/// <summary>
/// The cache-hit path after validation: key → usable? → entry → body with the remaining lifetime written in place.
/// The cache holds 10,000 entries so the dictionary is the size the default bound allows.
/// </summary>
public class CacheHitBenchmarks
{
    private readonly byte[] _buffer = new byte[4096];
    private ServiceProvider _services = null!;
    private TokenCache _cache = null!;
    private TokenCacheKey _key;
    private CachedToken _token = null!;
    private TokenFetcher _fetch = null!;

    [GlobalSetup]
    public void Setup()
    {
        _services = new ServiceCollection()
            .AddLogging()
            .AddMetrics()
            .AddOptions()
            .AddSingleton(TimeProvider.System)
            .AddSingleton<MsiProxyTelemetry>()
            .AddSingleton<TokenCache>()
            .BuildServiceProvider();
        _cache = _services.GetRequiredService<TokenCache>();
        var expiresOn = DateTimeOffset.UtcNow.AddHours(24).ToUnixTimeSeconds();
        var body = Encoding.UTF8.GetBytes(
            $$"""{"access_token":"{{new string('x', 1400)}}","client_id":"11111111-1111-1111-1111-111111111111","expires_in":"86399","expires_on":"{{expiresOn}}","ext_expires_in":"86398","not_before":"{{expiresOn - 86700}}","resource":"https://management.azure.com","token_type":"Bearer"}""");
        _fetch = (_, _) => Task.FromResult(new UpstreamResponse(200, body, "application/json; charset=utf-8"));
        var identity = IdentitySelector.Create(SelectorKind.ClientId, "11111111-1111-1111-1111-111111111111");
        for (var i = 0; i < 10_000; i++)
        {
            var key = new TokenCacheKey(identity, $"https://resource-{i}.example", "2018-02-01+", null);
            _cache.GetAsync(key, default, _fetch, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        }

        _key = new TokenCacheKey(identity, "https://resource-5000.example", "2018-02-01+", null);
        _token = _cache.GetAsync(_key, default, _fetch, CancellationToken.None).AsTask().GetAwaiter().GetResult().Token!;
    }

    [GlobalCleanup]
    public void Cleanup() => _services.Dispose();

    [Benchmark(Baseline = true)]
    public bool Would_fetch() => _cache.WouldFetch(_key);

    [Benchmark]
    public object? Get_hit() => Hit(_key);

    [Benchmark]
    public int Write_body() => _token.WriteBody(DateTimeOffset.UtcNow, _buffer);

    [Benchmark]
    public int Hit_path_key_lookup_and_write()
    {
        var key = new TokenCacheKey(_key.Identity, _key.Resource, TokenCacheKey.FamilyOf("2018-02-01"), null);
        if (_cache.WouldFetch(key))
        {
            return 0;
        }

        return Hit(key)!.WriteBody(DateTimeOffset.UtcNow, _buffer);
    }

    /// <summary>A hit completes synchronously; anything else here is a broken benchmark, not a slow one.</summary>
    private CachedToken? Hit(TokenCacheKey key)
    {
        var pending = _cache.GetAsync(key, default, _fetch, CancellationToken.None);
        return pending.IsCompletedSuccessfully ? pending.Result.Token : throw new InvalidOperationException("expected a synchronous cache hit");
    }
}
