using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Forwarding;

/// <summary>
/// Issue rule 2: what leaves the proxy for the upstream. IMDS rejects anything that looks proxied, so no
/// X-Forwarded-*/Forwarded, hop-by-hop headers stay on the client's hop, Host is the upstream's, and no cookies.
/// </summary>
public sealed class ForwardedHeadersTests
{
    private static readonly string[] ProxyingHeaders =
        ["X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Prefix", "Forwarded"];

    private static readonly string[] HopByHopHeaders = ["X-Hop", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "TE", "Upgrade"];

    private static HttpRequestMessage WithClientHeaders(HttpRequestMessage request)
    {
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "10.1.2.3");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Host", "evil.example");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Proto", "https");
        request.Headers.TryAddWithoutValidation("X-Forwarded-Prefix", "/evil");
        request.Headers.TryAddWithoutValidation("Forwarded", "for=10.1.2.3;host=evil.example;proto=https");
        request.Headers.TryAddWithoutValidation("Cookie", "session=client-secret");
        request.Headers.Connection.Add("X-Hop");
        request.Headers.TryAddWithoutValidation("X-Hop", "hop-secret");
        request.Headers.TryAddWithoutValidation("Keep-Alive", "timeout=5");
        request.Headers.TryAddWithoutValidation("Proxy-Connection", "keep-alive");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0");
        request.Headers.TryAddWithoutValidation("X-App-Header", "kept");
        return request;
    }

    [Fact]
    public async Task A_forwarded_instance_request_carries_metadata_true_the_upstream_host_and_nothing_that_looks_proxied()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = WithClientHeaders(ImdsRequests.Get("/metadata/instance/compute?api-version=2021-02-01"));
        using var response = await client.SendAsync(request);

        // The emulator, like IMDS, answers 400 to X-Forwarded-For; 200 already says it was removed.
        await CoreAssert.OkAsync(response);
        var upstream = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.Equal("/metadata/instance/compute", upstream.Path);
        Assert.Equal("?api-version=2021-02-01", upstream.Query);
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.Equal(emulator.BaseAddress.Authority, upstream.Headers["Host"]);
        Assert.Equal("kept", upstream.Headers["X-App-Header"]);
        foreach (var header in ProxyingHeaders.Concat(HopByHopHeaders).Append("Cookie"))
        {
            Assert.False(upstream.Headers.ContainsKey(header), $"{header} reached the upstream: {upstream.Headers.GetValueOrDefault(header)}");
        }

        Assert.DoesNotContain(upstream.Headers, h => h.Value.Contains("secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_token_request_upstream_carries_only_what_the_proxy_chose()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = WithClientHeaders(ImdsRequests.Token("https://management.azure.com/"));
        using var response = await client.SendAsync(request);

        await CoreAssert.OkAsync(response);
        var upstream = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.Equal(emulator.BaseAddress.Authority, upstream.Headers["Host"]);
        foreach (var header in ProxyingHeaders.Concat(HopByHopHeaders).Append("Cookie").Append("X-App-Header"))
        {
            Assert.False(upstream.Headers.ContainsKey(header), $"{header} reached the upstream");
        }
        Assert.DoesNotContain(upstream.Headers, h => h.Value.Contains("secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_upstream_redirect_is_passed_back_not_followed_and_its_cookies_are_dropped()
    {
        var followed = 0;
        await using var upstream = await ScriptedUpstream.StartAsync(context =>
        {
            if (context.Request.Path.StartsWithSegments("/metadata/instance/elsewhere"))
            {
                Interlocked.Increment(ref followed);
                return context.Response.WriteAsync("followed");
            }

            context.Response.StatusCode = 302;
            context.Response.Headers.Location = "/metadata/instance/elsewhere";
            context.Response.Headers.SetCookie = "upstream=secret; Path=/";
            return Task.CompletedTask;
        });
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(upstream.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            ConnectCallback = MsiProxy.Testing.Net.LoopbackCaller.CreateHandler(IPAddress.Parse("127.0.0.2")).ConnectCallback,
        }) { BaseAddress = proxy.ClientAddress };

        using var response = await client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal("/metadata/instance/elsewhere", response.Headers.Location?.OriginalString);
        Assert.False(response.Headers.Contains("Set-Cookie"), "Set-Cookie reached the client");
        Assert.Equal(0, followed);
        Assert.Single(upstream.Requests);
    }

    [Fact]
    public async Task Listing_metadata_as_hop_by_hop_does_not_strip_the_proxys_own_metadata_header()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = ImdsRequests.Get("/metadata/instance?api-version=2021-02-01");
        request.Headers.Connection.Add("Metadata");
        request.Headers.Connection.Add("X-App-Header");
        request.Headers.TryAddWithoutValidation("X-App-Header", "hop");
        using var response = await client.SendAsync(request);

        await CoreAssert.OkAsync(response);
        var upstream = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.False(upstream.Headers.ContainsKey("X-App-Header"));
    }

    [Fact]
    public async Task A_client_metadata_header_is_replaced_not_appended()
    {
        await using var upstream = await ScriptedUpstream.StartAsync(context => context.Response.WriteAsync("{}"));
        var settings = CoreSettings.Proxy(upstream.BaseAddress, ("app", "127.0.0.2", []));
        settings["MsiProxy:RequireMetadataHeader"] = "false";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var client = proxy.CreateClient("127.0.0.2");

        foreach (var value in new[] { "True", "false", "" })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/metadata/instance?api-version=2021-02-01");
            request.Headers.TryAddWithoutValidation("Metadata", value);
            using var response = await client.SendAsync(request);
            await CoreAssert.OkAsync(response);
        }

        using var none = await client.GetAsync("/metadata/instance?api-version=2021-02-01");
        await CoreAssert.OkAsync(none);
        Assert.Equal(4, upstream.Requests.Count);
        Assert.All(upstream.Requests, r => Assert.Equal("true", r.Headers["Metadata"]));
    }
}
