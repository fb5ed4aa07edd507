using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams;

namespace MsiProxy.UnitTests.Caching;

/// <summary>Options that never change, for unit tests of classes that read <see cref="IOptionsMonitor{T}"/>.</summary>
public sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;

    public T Get(string? name) => value;

    public IDisposable? OnChange(Action<T, string?> listener) => null;
}

/// <summary>A TokenCache on a fake clock, and upstream token bodies shaped like IMDS's.</summary>
internal static class CacheTestKit
{
    public static readonly DateTimeOffset Start = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public static TokenCache CreateCache(FakeTimeProvider time, CacheOptions? cache = null, MsiProxyTelemetry? telemetry = null) =>
        new(time, new FixedOptionsMonitor<MsiProxyOptions>(new MsiProxyOptions { Cache = cache ?? new CacheOptions() }),
            telemetry ?? CreateTelemetry(), NullLogger<TokenCache>.Instance);

    public static MsiProxyTelemetry CreateTelemetry() =>
        new(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>());

    public static TokenCacheKey Key(string resource = "https://management.azure.com/", IdentitySelector? identity = null) =>
        new(identity ?? IdentitySelector.SystemAssigned, resource, "2018-02-01+", null);

    /// <summary>An IMDS token body issued at <paramref name="now"/> living <paramref name="lifetime"/> (string-typed numbers, as IMDS sends).</summary>
    public static string TokenJson(string accessToken, DateTimeOffset now, TimeSpan lifetime, bool quotedNumbers = true)
    {
        var expiresIn = ((long)lifetime.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        var expiresOn = (now + lifetime).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var notBefore = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var q = quotedNumbers ? "\"" : "";
        return "{\"access_token\":\"" + accessToken + "\",\"client_id\":\"6f2a1b4c-8d3e-4f50-9a61-7b8c9d0e1f23\","
            + $"\"expires_in\":{q}{expiresIn}{q},\"expires_on\":{q}{expiresOn}{q},\"ext_expires_in\":{q}{expiresIn}{q},"
            + $"\"not_before\":{q}{notBefore}{q},\"resource\":\"https://management.azure.com/\",\"token_type\":\"Bearer\"}}";
    }

    public static UpstreamResponse Ok(string json) => new(200, Encoding.UTF8.GetBytes(json), "application/json; charset=utf-8") { Upstream = "http://127.0.0.1:1" };

    public static UpstreamResponse Error(int status) =>
        new(status, Encoding.UTF8.GetBytes("{\"error\":\"x\",\"error_description\":\"y\"}"), "application/json") { Upstream = "http://127.0.0.1:1" };

    public static string Body(CachedToken token, DateTimeOffset now)
    {
        var buffer = new byte[token.MaxBodyLength];
        var length = token.WriteBody(now, buffer);
        return Encoding.UTF8.GetString(buffer, 0, length);
    }

    public static string AccessToken(CachedToken token, DateTimeOffset now)
    {
        using var document = System.Text.Json.JsonDocument.Parse(Body(token, now));
        return document.RootElement.GetProperty("access_token").GetString()!;
    }
}
