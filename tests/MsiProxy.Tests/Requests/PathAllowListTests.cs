using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// Issue rule 3: only GET on the token endpoint and /metadata/instance (and below) — after normalising the raw
/// request target, so no spelling of a path escapes the allow-list. Raw sockets, because HttpClient would
/// normalise the very targets under test.
/// </summary>
public sealed class PathAllowListTests
{
    private const string Query = "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    public static TheoryData<string> EscapingTargets => new()
    {
        "/metadata/instance/../identity/oauth2/token/../../../attested/document",
        "/metadata/instance/../attested/document",
        "/metadata/instance/../../healthz",
        "/metadata/instance/./../attested/document",
        "/metadata/%2e%2e/metadata/attested/document",
        "/metadata/instance/%2e%2e/attested/document",
        "/metadata/instance/%2E%2E/%2e%2E/healthz",
        "/metadata/instance/.%2e/attested/document",
        "//metadata/attested/document",
        "/metadata//attested/document",
        "/metadata/instance%2f..%2f..%2fattested/document",
        "/metadata/instance%2F..%2Fattested/document",
        "/metadata/instance/..%2fattested/document",
        "/metadata/instance\\..\\attested/document",
        "/metadata/instance/..\\..\\healthz",
        "/metadata/instance%5c..%5cattested/document",
        "/metadata/instance%00/compute",
        "/metadata/instance/%zz",
        "/metadata/instance/%2",
        "/../metadata/instance",
        "/metadata/identityx/oauth2/token",
        "/metadata/identity/oauth2/tokenx",
        "/metadata/identity/oauth2/token/extra",
        "/metadata/identity/oauth2",
        "/metadata/identity/info",
        "/metadata/instancex",
        "/metadata/versionsx",
        "/metadata/attested/document",
        "/metadata",
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/admin/clients",
        "/admin/cache",
        "http://127.0.0.1/metadata/instance",
        "*",
    };

    [Theory]
    [MemberData(nameof(EscapingTargets))]
    public async Task A_target_outside_the_allow_list_is_404_json_and_never_forwarded(string target)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));

        var response = await RawHttp.GetAsync(proxy.ClientAddress, target + Query, Metadata);

        // Kestrel itself refuses some targets (400) before the proxy sees them; either way nothing may be forwarded.
        if (response.Status != 400)
        {
            CoreAssert.ImdsError(response, 404, "not_found");
        }

        CoreAssert.NothingUpstream(emulator);
    }

    public static TheoryData<string, string> AllowedTargets => new()
    {
        { "/metadata/identity/oauth2/token" + Query, "/metadata/identity/oauth2/token" },
        { "/metadata/identity/oauth2/token/" + Query, "/metadata/identity/oauth2/token" },
        { "/METADATA/identity/oauth2/token" + Query, "/metadata/identity/oauth2/token" },
        { "/Metadata/Identity/OAuth2/Token" + Query, "/metadata/identity/oauth2/token" },
        { "/metadata/instance?api-version=2021-02-01", "/metadata/instance" },
        { "/metadata/instance/?api-version=2021-02-01", "/metadata/instance" },
        { "/metadata/instance/compute?api-version=2021-02-01", "/metadata/instance/compute" },
        { "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text", "/metadata/instance/compute/vmId" },
        { "/metadata/instance/network/../compute?api-version=2021-02-01", "/metadata/instance/compute" },
        { "/metadata/instance/%63ompute?api-version=2021-02-01", "/metadata/instance/compute" },
    };

    [Theory]
    [MemberData(nameof(AllowedTargets))]
    public async Task An_allowed_spelling_is_served_and_what_goes_upstream_is_the_normalised_path(string target, string upstreamPath)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));

        var response = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata);

        Assert.True(response.Status == 200, $"{target}: {response.Status} {response.BodyText}");
        var forwarded = Assert.Single(CoreAssert.NonProbeRequests(emulator));
        Assert.Equal(upstreamPath, forwarded.Path, ignoreCase: true);
    }

    [Fact]
    public async Task Identity_info_is_forwarded_only_when_the_operator_allows_it()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", []));
        settings["MsiProxy:AllowedPaths:0"] = "/metadata/identity/oauth2/token";
        settings["MsiProxy:AllowedPaths:1"] = "/metadata/identity/info";
        await using var proxy = await ProxyHost.StartAsync(settings);

        var info = await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/identity/info?api-version=2018-02-01", Metadata);
        Assert.True(info.Status == 200, $"{info.Status} {info.BodyText}");

        // The instance path is no longer in the (replaced) list.
        var instance = await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance?api-version=2021-02-01", Metadata);
        CoreAssert.ImdsError(instance, 404, "not_found");
        Assert.Single(CoreAssert.NonProbeRequests(emulator));
    }

    [Theory]
    [InlineData("POST", "/metadata/identity/oauth2/token" + Query)]
    [InlineData("PUT", "/metadata/identity/oauth2/token" + Query)]
    [InlineData("DELETE", "/metadata/identity/oauth2/token" + Query)]
    [InlineData("PATCH", "/metadata/instance?api-version=2021-02-01")]
    [InlineData("POST", "/metadata/instance/compute?api-version=2021-02-01")]
    [InlineData("HEAD", "/metadata/instance?api-version=2021-02-01")]
    [InlineData("OPTIONS", "/metadata/identity/oauth2/token" + Query)]
    public async Task Another_method_on_an_allowed_path_is_405_with_allow_get(string method, string target)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = new HttpRequestMessage(new HttpMethod(method), target) { Headers = { { "Metadata", "true" } } };
        if (method is "POST" or "PUT" or "PATCH")
        {
            request.Content = new StringContent("{}");
        }

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(["GET"], response.Content.Headers.Allow);
        if (method != "HEAD")
        {
            await CoreAssert.ImdsErrorAsync(response, HttpStatusCode.MethodNotAllowed, "method_not_allowed");
        }

        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task A_method_on_a_path_outside_the_allow_list_is_404_not_405()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var response = await client.PostAsync("/admin/clients", new StringContent("{}"));

        await CoreAssert.ImdsErrorAsync(response, HttpStatusCode.NotFound, "not_found");
        CoreAssert.NothingUpstream(emulator);
    }
}
