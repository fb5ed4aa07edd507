using System.Globalization;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// Issue rule 7: one request-log line per client request with who, what, how it ended and how long — never a token.
/// Serial: the proxy's Serilog setup writes through the static Log.Logger, so a host running in parallel could
/// receive another host's lines.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class RequestLogTests
{
    private const string Category = "MsiProxy.Requests";
    private const string Resource = "https://management.azure.com/";

    private static async Task<CapturedLog> OneLogLineForAsync(ProxyHost proxy, HttpClient client, HttpRequestMessage request, HttpStatusCode expected)
    {
        var before = proxy.Logs.Events.Count(e => e.Category == Category);
        using (request)
        using (var response = await client.SendAsync(request))
        {
            Assert.Equal(expected, response.StatusCode);
        }

        // One request, one line: a marker request sent afterwards is logged too, so a second line for the first one
        // would have been written by the time both are there.
        using (var marker = await client.SendAsync(ImdsRequests.Get("/metadata/marker")))
        {
            Assert.Equal(HttpStatusCode.NotFound, marker.StatusCode);
        }

        var lines = await CoreAssert.RequestLogLinesAsync(proxy, before + 2);
        var after = lines.Skip(before).ToList();
        Assert.Single(after, line => line.Value("Path") == "/metadata/marker");
        return Assert.Single(after, line => line.Value("Path") != "/metadata/marker");
    }

    private static void AssertLine(CapturedLog line, string caller, string? client, string path, int status)
    {
        Assert.Equal(caller, line.Value("Caller"));
        Assert.Equal(client, line.Value("ClientName"));
        Assert.Equal(path, line.Value("Path"));
        Assert.Equal(status.ToString(CultureInfo.InvariantCulture), line.Value("StatusCode"));
        Assert.True(double.TryParse(line.Value("DurationMs"), CultureInfo.InvariantCulture, out var duration) && duration >= 0,
            $"DurationMs = {line.Value("DurationMs")}");
    }

    [Fact]
    public async Task Each_request_gets_exactly_one_line_with_caller_client_path_status_upstream_and_duration()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var app = proxy.CreateClient("127.0.0.2");
        using var stranger = proxy.CreateClient("127.0.0.3");
        var upstream = emulator.BaseAddress.ToString().TrimEnd('/');

        var instance = await OneLogLineForAsync(proxy, app, ImdsRequests.Get("/metadata/instance/compute?api-version=2021-02-01"), HttpStatusCode.OK);
        AssertLine(instance, "127.0.0.2", "app", "/metadata/instance/compute", 200);
        Assert.Equal(upstream, instance.Value("Upstream"));

        var miss = await OneLogLineForAsync(proxy, app, ImdsRequests.Token(Resource), HttpStatusCode.OK);
        AssertLine(miss, "127.0.0.2", "app", "/metadata/identity/oauth2/token", 200);

        var hit = await OneLogLineForAsync(proxy, app, ImdsRequests.Token(Resource), HttpStatusCode.OK);
        AssertLine(hit, "127.0.0.2", "app", "/metadata/identity/oauth2/token", 200);
        Assert.Equal("hit", hit.Value("Outcome"));

        var refused = await OneLogLineForAsync(proxy, stranger, ImdsRequests.Token(Resource), HttpStatusCode.Forbidden);
        AssertLine(refused, "127.0.0.3", null, "/metadata/identity/oauth2/token", 403);

        var denied = await OneLogLineForAsync(proxy, app, ImdsRequests.Get("/metadata/attested/document?api-version=2021-02-01"), HttpStatusCode.Forbidden);
        AssertLine(denied, "127.0.0.2", "app", "/metadata/attested/document", 403);
        Assert.Equal("denied", denied.Value("Outcome"));
        Assert.Null(denied.Value("Upstream"));

        // Outside the endpoint table the path is refused before anyone is looked up (IMDSv2's probe is such a path).
        var notFound = await OneLogLineForAsync(proxy, app, ImdsRequests.Get("/metadata/identity/getplatformmetadata?cred-api-version=2.0"),
            HttpStatusCode.NotFound);
        AssertLine(notFound, "127.0.0.2", null, "/metadata/identity/getplatformmetadata", 404);
        Assert.Null(notFound.Value("Upstream"));
    }

    [Fact]
    public async Task A_registered_caller_is_served_and_logged_by_its_tcp_address_whatever_its_headers_claim()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));

        using var app = proxy.CreateClient("127.0.0.2");
        using var request = ImdsRequests.Token(Resource);
        request.Headers.TryAddWithoutValidation("X-Forwarded-For", "127.0.0.99");
        request.Headers.TryAddWithoutValidation("Forwarded", "for=127.0.0.99");
        using var response = await app.SendAsync(request);

        await CoreAssert.OkAsync(response);
        var log = Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1));
        Assert.Equal("127.0.0.2", log.Value("Caller"));
        Assert.Equal("app", log.Value("ClientName"));
    }

    [Fact]
    public async Task A_token_fetched_on_a_miss_names_the_upstream_it_came_from()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var app = proxy.CreateClient("127.0.0.2");

        var miss = await OneLogLineForAsync(proxy, app, ImdsRequests.Token(Resource), HttpStatusCode.OK);

        Assert.Equal(emulator.BaseAddress.ToString().TrimEnd('/'), miss.Value("Upstream"));
    }

    [Fact]
    public async Task No_issued_token_appears_anywhere_in_the_logs()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(new EmulatorOptions
        {
            UserAssigned = { new UserAssignedIdentity("8b4d6c3a-1f2e-4a5b-9c8d-7e6f5a4b3c2d", "4c3b2a19-0f8e-4d7c-b6a5-948372615041", "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u") },
        });
        var settings = CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", ["system", "client_id=8b4d6c3a-1f2e-4a5b-9c8d-7e6f5a4b3c2d"]));
        settings["MsiProxy:Prefetch:Resources:0"] = "https://storage.azure.com/";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var app = proxy.CreateClient("127.0.0.2");

        // Miss, hit, bypass, a user-assigned identity, a prefetched token, and an upstream error whose body echoes a token.
        foreach (var request in new[]
        {
            ImdsRequests.Token(Resource), ImdsRequests.Token(Resource), ImdsRequests.Token(Resource, "bypass_cache=true"),
            ImdsRequests.Token("https://vault.azure.net", "client_id=8b4d6c3a-1f2e-4a5b-9c8d-7e6f5a4b3c2d"),
            ImdsRequests.Token("https://storage.azure.com/"),
        })
        {
            using (request)
            using (var response = await app.SendAsync(request))
            {
                await CoreAssert.OkAsync(response);
            }
        }

        var issued = emulator.State.IssuedTokens;
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 400, Body = "{\"error\":\"invalid_request\",\"error_description\":\"" + issued[0] + "\"}" });
        using (var echoed = await app.SendAsync(ImdsRequests.Token("https://graph.microsoft.com/")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, echoed.StatusCode);
        }

        await CoreAssert.RequestLogLinesAsync(proxy, 6);
        Assert.True(issued.Count >= 4, $"expected at least 4 issued tokens, got {issued.Count}");
        var logs = proxy.Logs.AllText();
        Assert.Contains("RequestCompleted", logs);
        foreach (var token in issued)
        {
            Assert.DoesNotContain(token, logs, StringComparison.Ordinal);
            // Not even the signature alone.
            Assert.DoesNotContain(token.Split('.')[2], logs, StringComparison.Ordinal);
        }
    }
}
