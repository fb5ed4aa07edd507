using System.Globalization;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Forwarding;

/// <summary>
/// What leaves the proxy for the upstream, as the emulator logged it: an allow-list of headers — the proxy's own
/// <c>Metadata: true</c> and <c>Host</c>, the client's <c>Accept</c>, <c>User-Agent</c> and <c>x-ms-client-request-id</c>,
/// and trace context (the test upstream is loopback, i.e. an msiserviceclient) — and never a body.
/// </summary>
public sealed class ForwardedHeadersTests
{
    private static readonly HashSet<string> Allowed = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Metadata", "Accept", "User-Agent", "x-ms-client-request-id", "traceparent", "tracestate",
    };

    /// <summary>Headers an attacker (or a confused client) might send to look proxied, change the target or smuggle state.</summary>
    private static readonly (string Name, string Value)[] Hostile =
    [
        ("X-Forwarded-For", "10.1.2.3"), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Prefix", "/evil"), ("Forwarded", "for=10.1.2.3;host=evil.example"), ("X-Real-IP", "10.1.2.3"),
        ("X-Client-IP", "10.1.2.3"), ("True-Client-IP", "10.1.2.3"), ("X-Original-URL", "/metadata/identity/oauth2/token"),
        ("X-Rewrite-URL", "/metadata/identity/oauth2/token"), ("X-HTTP-Method-Override", "POST"), ("Via", "1.1 evil"),
        ("Upgrade", "websocket"), ("Cookie", "session=client-secret"), ("Authorization", "Bearer client-secret"),
        ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"), ("X-IDENTITY-HEADER", "client-secret"), ("secret", "client-secret"),
        ("X-Hop", "hop-secret"), ("X-App-Header", "app"), ("Metadata-Flavor", "Google"), ("x-ms-return-client-request-id", "true"),
    ];

    private static HttpRequestMessage WithClientHeaders(HttpRequestMessage request)
    {
        foreach (var (name, value) in Hostile)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        request.Headers.Connection.Add("X-Hop");
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.UserAgent.ParseAdd("azsdk-net-Identity/1.21.0");
        request.Headers.TryAddWithoutValidation("x-ms-client-request-id", "5b8f3a0c-0d1e-4f2a-9b3c-4d5e6f708192");
        return request;
    }

    public static TheoryData<string> Targets => new()
    {
        "/metadata/instance/compute?api-version=2021-02-01",
        ImdsRequests.TokenPath + "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F",
    };

    [Theory]
    [MemberData(nameof(Targets))]
    public async Task Only_allow_listed_headers_reach_the_upstream_with_the_clients_own_values(string target)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = WithClientHeaders(ImdsRequests.Get(target));
        using var response = await client.SendAsync(request);

        await CoreAssert.OkAsync(response);
        var upstream = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.All(upstream.Headers.Keys, name => Assert.True(Allowed.Contains(name), $"{name}: {upstream.Headers[name]} reached the upstream"));
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.Equal(emulator.BaseAddress.Authority, upstream.Headers["Host"]);
        Assert.Equal("application/json", upstream.Headers["Accept"]);
        Assert.Equal("azsdk-net-Identity/1.21.0", upstream.Headers["User-Agent"]);
        Assert.Equal("5b8f3a0c-0d1e-4f2a-9b3c-4d5e6f708192", upstream.Headers["x-ms-client-request-id"]);
        Assert.DoesNotContain(upstream.Headers.Values, value => value.Contains("secret", StringComparison.Ordinal) || value.Contains("evil", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_body_is_never_forwarded_and_one_over_the_limit_is_413()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var small = ImdsRequests.Get("/metadata/instance/network?api-version=2021-02-01");
        small.Content = new StringContent("{\"smuggled\":true}");
        using (var response = await client.SendAsync(small))
        {
            await CoreAssert.OkAsync(response);
        }

        var upstream = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.False(upstream.Headers.ContainsKey("Content-Length") || upstream.Headers.ContainsKey("Transfer-Encoding"), "a body went upstream");

        // Announced, never sent: the proxy answers from the headers, and a client still writing a megabyte would race
        // the connection's close (a broken pipe instead of the 413 this test reads).
        var large = await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance/compute?api-version=2021-02-01",
            [("Metadata", "true"), ("Content-Type", "application/octet-stream"), ("Content-Length", (1024 * 1024).ToString(CultureInfo.InvariantCulture))],
            from: "127.0.0.2");
        Assert.Equal(413, large.Status);
        Assert.Contains("\"invalid_request\"", large.BodyText, StringComparison.Ordinal);

        Assert.Single(CoreAssert.NonProbeRequests(emulator));
    }

    [Fact]
    public async Task An_upstream_redirect_is_a_502_never_followed_nor_passed_on_with_its_cookies()
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
            ConnectCallback = LoopbackCaller.CreateHandler(IPAddress.Parse("127.0.0.2")).ConnectCallback,
        }) { BaseAddress = proxy.ClientAddress };

        using var response = await client.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));

        await CoreAssert.ImdsErrorAsync(response, HttpStatusCode.BadGateway, "bad_gateway");
        Assert.Null(response.Headers.Location);
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
        using var response = await client.SendAsync(request);

        await CoreAssert.OkAsync(response);
        Assert.Equal("true", Assert.Single(CoreAssert.NonProbeRequests(emulator)).Headers["Metadata"]);
    }

    [Fact]
    public async Task A_client_metadata_header_is_replaced_not_appended()
    {
        await using var upstream = await ScriptedUpstream.StartAsync(context => context.Response.WriteAsync("{}"));
        var settings = CoreSettings.Proxy(upstream.BaseAddress, ("app", "127.0.0.2", []));
        settings["MsiProxy:RequireMetadataHeader"] = "false";
        settings["MsiProxy:Forwarding:SharedAnswerDuration"] = "00:00:00"; // every request goes upstream
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
