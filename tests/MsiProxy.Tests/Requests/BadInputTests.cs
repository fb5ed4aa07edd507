using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

/// <summary>Issue rule 4 and the Metadata SSRF guard: bad input gets a clear 4xx and never reaches the upstream.</summary>
public sealed class BadInputTests
{
    private const string TokenPath = "/metadata/identity/oauth2/token";
    private const string Resource = "resource=https%3A%2F%2Fmanagement.azure.com%2F";
    private const string ClientId = "8b4d6c3a-1f2e-4a5b-9c8d-7e6f5a4b3c2d";
    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    public static TheoryData<string, string> BadQueries => new()
    {
        { "?api-version=2018-02-01&" + Resource + "&" + Resource, "Duplicate" },
        { "?api-version=2018-02-01&api-version=2019-08-01&" + Resource, "Duplicate" },
        { "?api-version=2018-02-01&" + Resource + "&RESOURCE=https://vault.azure.net", "Duplicate" },
        { "?api-version=2018-02-01&" + Resource + "&client_id=" + ClientId + "&client_id=" + ClientId, "Duplicate" },
        { "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2", "percent-encoding" },
        { "?api-version=2018-02-01&resource=%zzmanagement", "percent-encoding" },
        { "?api-version=2018-02-01&" + Resource + "&client_id=%", "percent-encoding" },
        { "?api-version=2018-02-01&resource=%C3%28", "percent-encoding" },
        { "?api-version=2018-02-01&" + Resource + "&client_id=" + ClientId + "&object_id=" + ClientId, "Only one" },
        { "?api-version=2018-02-01&" + Resource + "&client_id=" + ClientId + "&msi_res_id=/subscriptions/x", "Only one" },
        { "?api-version=2018-02-01&" + Resource + "&object_id=" + ClientId + "&mi_res_id=/subscriptions/x", "Only one" },
        { "?api-version=2018-02-01&" + Resource + "&foo=bar", "Unsupported" },
        { "?api-version=2018-02-01&" + Resource + "&=bar", "without a name" },
        { "?" + Resource, "api-version" },
        { "?api-version=2018-02-01", "resource" },
        { "?api-version=2018-02-01&" + Resource + "&client_id=", "empty" },
        { "?api-version=2018-02-01&" + Resource + "&bypass_cache=yes", "bypass_cache" },
    };

    [Theory]
    [MemberData(nameof(BadQueries))]
    public async Task A_bad_token_query_is_400_json_naming_the_problem_and_nothing_goes_upstream(string query, string named)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", ["*"])));

        var response = await RawHttp.GetAsync(proxy.ClientAddress, TokenPath + query, Metadata);

        var description = CoreAssert.ImdsError(response, 400, "invalid_request");
        Assert.Contains(named, description, StringComparison.OrdinalIgnoreCase);
        CoreAssert.NothingUpstream(emulator);
    }

    [Theory]
    [InlineData("?api-version=2021-02-01&format=json&format=text")]
    [InlineData("?api-version=2021-02-01&format=%4")]
    public async Task A_bad_instance_query_is_400_json_and_nothing_goes_upstream(string query)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));

        var response = await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance" + query, Metadata);

        CoreAssert.ImdsError(response, 400, "invalid_request");
        CoreAssert.NothingUpstream(emulator);
    }

    public static TheoryData<string[]> BadMetadataHeaders => new()
    {
        Array.Empty<string>(),
        new[] { "True" },
        new[] { "TRUE" },
        new[] { "false" },
        new[] { "1" },
        new[] { "" },
        new[] { "true", "true" },
        new[] { "true, true" },
    };

    [Theory]
    [MemberData(nameof(BadMetadataHeaders))]
    public async Task Without_exactly_metadata_true_the_request_is_400_and_nothing_goes_upstream(string[] values)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));
        var headers = values.Select(v => ("Metadata", v)).ToArray();

        var token = await RawHttp.GetAsync(proxy.ClientAddress, TokenPath + "?api-version=2018-02-01&" + Resource, headers);
        var instance = await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance?api-version=2021-02-01", headers);

        CoreAssert.ImdsExact(token, 400, CoreAssert.MetadataHeaderMissingBody);
        CoreAssert.ImdsExact(instance, 400, CoreAssert.InstanceMetadataHeaderMissingBody);
        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task An_over_long_request_line_is_414_and_nothing_goes_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));

        var target = TokenPath + "?api-version=2018-02-01&resource=https%3A%2F%2F" + new string('a', 9 * 1024) + ".azure.com%2F";
        var response = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata);

        Assert.Equal(414, response.Status);
        CoreAssert.NothingUpstream(emulator);

        // Just under the limit is still read (and refused for its own reasons only).
        var fits = TokenPath + "?api-version=2018-02-01&resource=https%3A%2F%2F" + new string('a', 7 * 1024) + ".azure.com%2F";
        var served = await RawHttp.GetAsync(proxy.ClientAddress, fits, Metadata);
        Assert.NotEqual(414, served.Status);
    }

    [Fact]
    public async Task Over_large_headers_are_431_and_nothing_goes_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));
        (string, string)[] headers = [("Metadata", "true"), ("X-Padding-1", new string('p', 9 * 1024)), ("X-Padding-2", new string('q', 9 * 1024))];

        var response = await RawHttp.GetAsync(proxy.ClientAddress, TokenPath + "?api-version=2018-02-01&" + Resource, headers);

        Assert.Equal(431, response.Status);
        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task Too_many_headers_are_431_and_nothing_goes_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));
        var headers = Enumerable.Range(0, 100).Select(i => ($"X-H{i}", "v")).Append(("Metadata", "true")).ToArray();

        var response = await RawHttp.GetAsync(proxy.ClientAddress, TokenPath + "?api-version=2018-02-01&" + Resource, headers);

        Assert.Equal(431, response.Status);
        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task Metadata_true_is_what_the_upstream_sees_on_both_paths()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var token = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        using var instance = await client.SendAsync(ImdsRequests.Get("/metadata/instance/compute?api-version=2021-02-01"));

        await CoreAssert.OkAsync(token);
        await CoreAssert.OkAsync(instance);
        var upstream = CoreAssert.NonProbeRequests(emulator);
        Assert.Equal(2, upstream.Count);
        Assert.All(upstream, r => Assert.Equal("true", r.Headers["Metadata"]));
    }
}
