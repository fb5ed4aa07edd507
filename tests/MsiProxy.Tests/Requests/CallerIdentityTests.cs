using System.Net;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.ImdsEmulator;
using MsiProxy.Requests;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

/// <summary>Issue rule 1: the caller is the TCP peer address, and no header can change that.</summary>
public sealed class CallerIdentityTests
{
    private const string Resource = "https://management.azure.com/";

    [Fact]
    public async Task An_unregistered_caller_gets_403_naming_its_address_and_nothing_goes_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));

        using var stranger = proxy.CreateClient("127.0.0.3");
        using var token = await stranger.SendAsync(ImdsRequests.Token(Resource));
        var description = await CoreAssert.ImdsErrorAsync(token, HttpStatusCode.Forbidden, "forbidden");
        Assert.Contains("127.0.0.3", description);

        using var instance = await stranger.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));
        Assert.Contains("127.0.0.3", await CoreAssert.ImdsErrorAsync(instance, HttpStatusCode.Forbidden, "forbidden"));
        CoreAssert.NothingUpstream(emulator);
    }

    public static TheoryData<string, string> SpoofingHeaders => new()
    {
        { "X-Forwarded-For", "127.0.0.2" },
        { "X-Forwarded-For", "127.0.0.2, 127.0.0.3" },
        { "Forwarded", "for=127.0.0.2" },
        { "Forwarded", "for=\"127.0.0.2\";proto=http;by=127.0.0.1" },
        { "X-Real-IP", "127.0.0.2" },
        { "X-Client-IP", "127.0.0.2" },
        { "True-Client-IP", "127.0.0.2" },
        { "X-Original-For", "127.0.0.2" },
    };

    [Theory]
    [MemberData(nameof(SpoofingHeaders))]
    public async Task A_header_naming_a_registered_address_does_not_make_a_stranger_that_client(string header, string value)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));

        using var stranger = proxy.CreateClient("127.0.0.3");
        using var request = ImdsRequests.Token(Resource);
        request.Headers.TryAddWithoutValidation(header, value);
        using var response = await stranger.SendAsync(request);

        var description = await CoreAssert.ImdsErrorAsync(response, HttpStatusCode.Forbidden, "forbidden");
        Assert.Contains("127.0.0.3", description);
        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task A_client_registered_as_ipv6_loopback_is_served_over_ipv6_and_its_ipv4_twin_is_not()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("v6", "::1", []));
        settings["urls"] = "http://127.0.0.1:0;http://[::1]:0";
        await using var proxy = await ProxyHost.StartAsync(settings);
        var v6Port = proxy.Get<MsiProxy.Routing.Listeners>().ClientEndpoints.Single(e => e.Address.Equals(IPAddress.IPv6Loopback)).Port;

        using var v6 = LoopbackCaller.Create(IPAddress.IPv6Loopback, new Uri($"http://[::1]:{v6Port}"));
        using var served = await v6.SendAsync(ImdsRequests.Token(Resource));
        await CoreAssert.OkAsync(served);

        using var v4 = proxy.CreateClient("127.0.0.1");
        using var refused = await v4.SendAsync(ImdsRequests.Token(Resource));
        Assert.Contains("127.0.0.1", await CoreAssert.ImdsErrorAsync(refused, HttpStatusCode.Forbidden, "forbidden"));
    }

    [Fact]
    public async Task A_cidr_registration_admits_addresses_inside_the_block_only()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("block", "127.0.0.0/29", [])));

        foreach (var inside in new[] { "127.0.0.1", "127.0.0.5", "127.0.0.7" })
        {
            using var client = proxy.CreateClient(inside);
            using var response = await client.SendAsync(ImdsRequests.Token(Resource));
            await CoreAssert.OkAsync(response);
        }

        var before = CoreAssert.NonProbeRequests(emulator).Count;
        foreach (var outside in new[] { "127.0.0.8", "127.0.0.9", "127.0.1.5" })
        {
            using var client = proxy.CreateClient(outside);
            using var response = await client.SendAsync(ImdsRequests.Token(Resource));
            Assert.Contains(outside, await CoreAssert.ImdsErrorAsync(response, HttpStatusCode.Forbidden, "forbidden"));
        }

        CoreAssert.NothingUpstream(emulator, before);
    }

    [Fact]
    public async Task An_ipv4_mapped_ipv6_peer_is_the_ipv4_client()
    {
        // A dual-mode listener reports IPv4 peers as ::ffff:a.b.c.d. Binding one would listen beyond loopback, so this
        // drives the real gate (with the running proxy's registry) with such a peer address directly.
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        var gate = proxy.Get<RequestGate>();

        var mapped = await gate.CheckAsync(Context(IPAddress.Parse("::ffff:127.0.0.2")));
        Assert.True(mapped.Request is not null, $"the gate refused ::ffff:127.0.0.2 with {mapped.Refusal?.Status}");
        Assert.Equal(IPAddress.Parse("127.0.0.2"), mapped.Request.Caller);
        Assert.Equal("app", mapped.Request.Client.Name);

        var other = await gate.CheckAsync(Context(IPAddress.Parse("::ffff:127.0.0.3")));
        Assert.Null(other.Request);
        Assert.Equal(StatusCodes.Status403Forbidden, other.Refusal!.Status);
        Assert.Equal("unregistered", other.Refusal.Reason);

        static DefaultHttpContext Context(IPAddress peer)
        {
            var context = new DefaultHttpContext();
            context.Connection.RemoteIpAddress = peer;
            context.Request.Method = "GET";
            context.Request.Path = ImdsRequests.TokenPath;
            context.Features.Get<IHttpRequestFeature>()!.RawTarget = ImdsRequests.TokenPath + "?api-version=2018-02-01&resource=x";
            context.Request.Headers["Metadata"] = "true";
            context.Response.Body = new MemoryStream();
            return context;
        }
    }
}
