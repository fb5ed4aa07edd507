using System.Net;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Management;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// The endpoint table: what every client may use, what is opt-in per client, and the methods each endpoint takes.
/// Sensitive endpoints (user data, the attested document, scheduled events, identity info) are denied unless a
/// client opts in — and user data cannot be read through the instance document either.
/// </summary>
public sealed class EndpointTableTests
{
    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    public static TheoryData<string, string> SensitiveTargets => new()
    {
        { "/metadata/instance/compute/userData?api-version=2021-02-01&format=text", "userdata" },
        { "/metadata/attested/document?api-version=2021-02-01&nonce=1234567890", "attested" },
        { "/metadata/scheduledevents?api-version=2020-07-01", "scheduledevents" },
        { "/metadata/identity/info?api-version=2018-02-01", "identity-info" },
    };

    [Theory]
    [MemberData(nameof(SensitiveTargets))]
    public async Task A_sensitive_endpoint_is_403_by_default_and_served_once_the_client_opts_in(string target, string endpoint)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("plain", "127.0.0.2", []), ("trusted", "127.0.0.3", []));
        settings["MsiProxy:Clients:1:Endpoints:0"] = endpoint;
        await using var proxy = await ProxyHost.StartAsync(settings);

        var refused = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata, from: "127.0.0.2");
        var description = CoreAssert.ImdsError(refused, 403, "forbidden");
        Assert.Contains("plain", description, StringComparison.Ordinal);
        Assert.Contains(endpoint, description, StringComparison.Ordinal);
        CoreAssert.NothingUpstream(emulator);

        var served = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata, from: "127.0.0.3");
        Assert.True(served.Status == 200, $"{served.Status} {served.BodyText}");
        Assert.Equal(target, Assert.Single(CoreAssert.NonProbeRequests(emulator)).RawTarget);
    }

    [Theory]
    [InlineData("/metadata/instance?api-version=2021-02-01", true)]
    [InlineData("/metadata/instance/compute?api-version=2021-02-01", false)]
    [InlineData("/metadata/INSTANCE/Compute/?api-version=2021-02-01", false)]
    public async Task User_data_is_taken_out_of_instance_documents_for_a_client_without_it(string target, bool whole)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("plain", "127.0.0.2", []), ("trusted", "127.0.0.3", []));
        settings["MsiProxy:Clients:1:Endpoints:0"] = "userdata";
        await using var proxy = await ProxyHost.StartAsync(settings);
        var secret = emulator.State.Options.UserData;

        var plain = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata, from: "127.0.0.2");
        var trusted = await RawHttp.GetAsync(proxy.ClientAddress, target, Metadata, from: "127.0.0.3");

        Assert.Equal(200, plain.Status);
        Assert.DoesNotContain(secret, plain.BodyText, StringComparison.Ordinal);
        var compute = Compute(plain.BodyText, whole);
        Assert.False(compute.TryGetProperty("userData", out _));
        Assert.Equal(emulator.State.Options.VmId, compute.GetProperty("vmId").GetString());
        Assert.Equal(200, trusted.Status);
        Assert.Equal(secret, Compute(trusted.BodyText, whole).GetProperty("userData").GetString());

        static JsonElement Compute(string body, bool whole)
        {
            var root = JsonDocument.Parse(body).RootElement.Clone();
            return whole ? root.GetProperty("compute") : root;
        }
    }

    [Fact]
    public async Task Default_endpoints_can_be_narrowed_and_a_client_opt_in_still_adds_to_them()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", []), ("infra", "127.0.0.3", []));
        settings["MsiProxy:DefaultEndpoints:0"] = "token";
        settings["MsiProxy:Clients:1:Endpoints:0"] = "instance";
        await using var proxy = await ProxyHost.StartAsync(settings);

        CoreAssert.ImdsError(await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance?api-version=2021-02-01", Metadata, from: "127.0.0.2"),
            403, "forbidden");
        Assert.Equal(200, (await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance?api-version=2021-02-01", Metadata, from: "127.0.0.3")).Status);
        Assert.Equal(200, (await RawHttp.GetAsync(proxy.ClientAddress, ImdsRequests.TokenPath + "?api-version=2018-02-01&resource=https://x",
            Metadata, from: "127.0.0.2")).Status);
    }

    [Fact]
    public async Task The_old_allowed_paths_still_work_but_never_grant_user_data()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", []));
        settings["MsiProxy:AllowedPaths:0"] = "/metadata/identity/oauth2/token";
        settings["MsiProxy:AllowedPaths:1"] = "/metadata/identity/info";
        settings["MsiProxy:AllowedPaths:2"] = "/metadata/instance";
        await using var proxy = await ProxyHost.StartAsync(settings);

        Assert.Equal(200, (await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/identity/info?api-version=2018-02-01", Metadata, from: "127.0.0.2")).Status);
        Assert.Equal(200, (await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text", Metadata,
            from: "127.0.0.2")).Status);
        CoreAssert.ImdsError(await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/instance/compute/userData?api-version=2021-02-01&format=text",
            Metadata, from: "127.0.0.2"), 403, "forbidden");
        CoreAssert.ImdsError(await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/loadbalancer?api-version=2020-10-01", Metadata, from: "127.0.0.2"),
            403, "forbidden");
    }

    [Theory]
    [InlineData("POST", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x")]
    [InlineData("PUT", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x")]
    [InlineData("DELETE", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x")]
    [InlineData("PATCH", "/metadata/instance?api-version=2021-02-01")]
    [InlineData("POST", "/metadata/scheduledevents?api-version=2020-07-01")]
    [InlineData("HEAD", "/metadata/instance?api-version=2021-02-01")]
    [InlineData("OPTIONS", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://x")]
    public async Task Another_method_on_an_endpoint_is_405_with_allow_get(string method, string target)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var request = new HttpRequestMessage(new HttpMethod(method), target) { Headers = { { "Metadata", "true" } } };
        if (method is "POST" or "PUT" or "PATCH")
        {
            request.Content = new StringContent("{\"StartRequests\":[{\"EventId\":\"x\"}]}");
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
    public async Task A_method_on_a_path_outside_the_table_is_404_not_405()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var response = await client.PostAsync("/admin/clients", new StringContent("{}"));

        await CoreAssert.ImdsExactAsync(response, HttpStatusCode.NotFound, CoreAssert.NotFoundBody);
        CoreAssert.NothingUpstream(emulator);
    }

    [Fact]
    public async Task Endpoints_can_be_granted_through_the_admin_api_and_unknown_names_are_refused()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = CoreSettings.Proxy(emulator.BaseAddress);
        settings["MsiProxy:Management:ApiKey"] = "admin-key-0123456789";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var admin = new AdminClient(proxy, "admin-key-0123456789");

        var bad = await admin.PutAsync("/admin/clients/app", new { address = "127.0.0.2", endpoints = new[] { "attested", "everything" } });
        Assert.Equal(HttpStatusCode.BadRequest, bad.Status);
        Assert.Contains("endpoints[1]", bad.Body, StringComparison.Ordinal);

        var put = await admin.PutAsync("/admin/clients/app", new { address = "127.0.0.2", endpoints = new[] { "attested" } });
        Assert.Equal(HttpStatusCode.Created, put.Status);
        Assert.Equal(["attested"], put.Json.GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(200, (await RawHttp.GetAsync(proxy.ClientAddress, "/metadata/attested/document?api-version=2021-02-01", Metadata,
            from: "127.0.0.2")).Status);
    }
}
