using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;
using MsiProxy.Tests.Tokens;
using static MsiProxy.Tests.Clients.SdkExpectations;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// Issue 16: the App Service managed-identity protocol on <c>/msi/token</c>, with a per-client secret. Real SDKs in child
/// processes with <c>IDENTITY_ENDPOINT</c> + <c>IDENTITY_HEADER</c> set; every assertion about what was served is also
/// made on what the upstream received and on the proxy's audit record of the request.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class AppServiceProtocolTests
{
    public static TheoryData<SdkKind> Sdks => [SdkKind.AzureIdentity, SdkKind.DefaultAzureCredential, SdkKind.Msal, SdkKind.Js,
        SdkKind.JsDefaultAzureCredential, SdkKind.MsalNode];

    private static readonly UserAssignedIdentity Bound = ProxyCalls.UserAssigned(0);

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task Every_SDK_gets_system_and_user_assigned_tokens_through_the_App_Service_endpoint_with_its_secret(SdkKind sdk)
    {
        var secret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(1));
        await using var proxy = await ProxyHost.StartAsync(WithProof(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system", $"client_id={Bound.ClientId}"])),
            0, "address+secret", secret));
        var endpoint = new Uri(proxy.ClientAddress, "/msi/token");

        var system = await SdkClientRunner.RunAppServiceAsync(endpoint, secret, Request(sdk, ResourceFor(sdk, "appsvc-system")));
        var user = await SdkClientRunner.RunAppServiceAsync(endpoint, secret, Request(sdk, ResourceFor(sdk, "appsvc-user")) with { ClientId = Bound.ClientId });

        Assert.True(system.Ok, system.ToString());
        Assert.True(user.Ok, user.ToString());
        Assert.Contains(system.Token, emulator.State.IssuedTokens);
        Assert.Contains(user.Token, emulator.State.IssuedTokens);
        Assert.True(user.ExpiresOn > DateTimeOffset.UtcNow.AddMinutes(30), $"the SDK read expires_on: {user.ExpiresOn}");
        AssertForwarded(Assert.Single(TokenRequestsFor(emulator.State, ResourceFor(sdk, "appsvc-system"))), null);
        AssertForwarded(Assert.Single(TokenRequestsFor(emulator.State, ResourceFor(sdk, "appsvc-user"))), ("client_id", Bound.ClientId));

        // The SDK chose the App Service source: the proxy served both on /msi/token, none on the IMDS path.
        var audit = await AuditAsync(proxy, 2);
        Assert.All(audit, line => Assert.Equal(("appservice-token", "/msi/token", "fetched"), (line.Value("Endpoint"), line.Value("Path"), line.Value("Decision"))));
    }

    [Theory]
    [MemberData(nameof(Sdks))]
    public async Task A_wrong_secret_is_refused_the_SDK_reports_it_and_nothing_goes_upstream(SdkKind sdk)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(WithProof(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])), 0, "address+secret", NewSecret()));

        var result = await SdkClientRunner.RunAppServiceAsync(new Uri(proxy.ClientAddress, "/msi/token"), NewSecret(), Request(sdk, ResourceFor(sdk, "appsvc-wrong")));

        Assert.False(result.Ok, result.ToString());
        Assert.Contains("does not match", result.Message + result.StandardOutput, StringComparison.Ordinal);
        Assert.Empty(ProxyCalls.TokenRequests(emulator));
        Assert.All(await AuditAsync(proxy, 1), line => Assert.Equal("denied:identity_header_wrong", line.Value("Decision")));
    }

    /// <summary>
    /// The attack the secret stops: a neighbour that takes the victim's source address (here it simply binds it on
    /// loopback; on a bridge it would ARP-spoof it) but does not know the victim's secret.
    /// </summary>
    [Fact]
    public async Task A_caller_with_only_the_victims_address_is_refused_under_address_and_secret_and_served_under_address()
    {
        var victimSecret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = ProxyCalls.Settings(emulator, ("victim", "127.0.0.2", ["system"]), ("open", "127.0.0.3", ["system"]));
        WithProof(settings, 0, "address+secret", victimSecret);
        await using var proxy = await ProxyHost.StartAsync(settings);
        var appService = $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}";
        var imds = $"{ImdsRequests.TokenPath}?api-version=2018-02-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}";

        var guessed = await RawHttp.GetAsync(proxy.ClientAddress, appService, [("X-IDENTITY-HEADER", NewSecret())], from: "127.0.0.2");
        var missing = await RawHttp.GetAsync(proxy.ClientAddress, appService, [], from: "127.0.0.2");
        var throughImds = await RawHttp.GetAsync(proxy.ClientAddress, imds, [("Metadata", "true")], from: "127.0.0.2");
        Assert.Equal((401, 401, 403), (guessed.Status, missing.Status, throughImds.Status));
        Assert.Empty(ProxyCalls.TokenRequests(emulator));

        // The victim itself, with its secret, is served; so is anyone at the address of a client whose proof is the address.
        var victim = await RawHttp.GetAsync(proxy.ClientAddress, appService, [("X-IDENTITY-HEADER", victimSecret)], from: "127.0.0.2");
        var spoofedOpen = await RawHttp.GetAsync(proxy.ClientAddress, appService, [("X-IDENTITY-HEADER", "anything")], from: "127.0.0.3");
        var openImds = await RawHttp.GetAsync(proxy.ClientAddress, imds, [("Metadata", "true")], from: "127.0.0.3");
        Assert.Equal((200, 200, 200), (victim.Status, spoofedOpen.Status, openImds.Status));

        var audit = await AuditAsync(proxy, 6);
        Assert.Equal(["denied:identity_header_wrong", "denied:identity_header_missing", "denied:proof", "fetched", "cache", "cache"],
            audit.Select(line => line.Value("Decision")));
    }

    [Fact]
    public async Task A_secret_only_client_is_found_by_its_secret_from_anywhere_in_its_range_and_nowhere_else()
    {
        var secret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = ProxyCalls.Settings(emulator, ("node-pods", "127.0.0.0/29", ["system"]), ("neighbour", "127.0.0.5", ["system"]));
        WithProof(settings, 0, "secret", secret);
        await using var proxy = await ProxyHost.StartAsync(settings);
        var appService = $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}";
        var imds = $"{ImdsRequests.TokenPath}?api-version=2018-02-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}";

        var fromRange = await RawHttp.GetAsync(proxy.ClientAddress, appService, [("X-IDENTITY-HEADER", secret)], from: "127.0.0.6");
        var outsideRange = await RawHttp.GetAsync(proxy.ClientAddress, appService, [("X-IDENTITY-HEADER", secret)], from: "127.0.0.9");
        var imdsFromRange = await RawHttp.GetAsync(proxy.ClientAddress, imds, [("Metadata", "true")], from: "127.0.0.6");
        // The neighbour's address lies in the range too, but its requests are its own: the range is not an address index.
        var neighbour = await RawHttp.GetAsync(proxy.ClientAddress, imds, [("Metadata", "true")], from: "127.0.0.5");

        Assert.Equal((200, 403, 403, 200), (fromRange.Status, outsideRange.Status, imdsFromRange.Status, neighbour.Status));
        var audit = await AuditAsync(proxy, 4);
        Assert.Equal([("node-pods", "fetched"), ("node-pods", "denied:address"), (null, "denied:unregistered"), ("neighbour", "cache")],
            audit.Select(line => (line.Value("ClientName"), line.Value("Decision"))));
    }

    [Fact]
    public async Task Answers_have_App_Service_shapes_tokens_without_expires_in_and_errors_with_statusCode_message_correlationId()
    {
        var secret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(1));
        await using var proxy = await ProxyHost.StartAsync(WithProof(ProxyCalls.Settings(emulator, ("app", "127.0.0.2", ["system", $"object_id={Bound.ObjectId}"])),
            0, "address+secret", secret));
        (string, string)[] header = [("X-IDENTITY-HEADER", secret)];

        var token = await RawHttp.GetAsync(proxy.ClientAddress,
            $"/msi/token?resource={Uri.EscapeDataString(ProxyCalls.Arm)}&api-version=2019-08-01&principal_id={Bound.ObjectId}", header, from: "127.0.0.2");
        Assert.Equal(200, token.Status);
        using (var json = JsonDocument.Parse(token.Body))
        {
            Assert.Equal(["access_token", "expires_on", "resource", "token_type", "client_id"], json.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Contains(json.RootElement.GetProperty("access_token").GetString(), emulator.State.IssuedTokens);
            var expiresOn = long.Parse(json.RootElement.GetProperty("expires_on").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
            Assert.InRange(DateTimeOffset.FromUnixTimeSeconds(expiresOn), DateTimeOffset.UtcNow.AddMinutes(30), DateTimeOffset.UtcNow.AddDays(2));
            Assert.Equal(Bound.ClientId, json.RootElement.GetProperty("client_id").GetString());
        }

        // principal_id is App Service's name for the object id; IMDS is asked with its own, in its own protocol — the
        // secret stays with the proxy.
        var upstream = Assert.Single(ProxyCalls.TokenRequests(emulator));
        AssertForwarded(upstream, ("object_id", Bound.ObjectId));
        Assert.Equal("2018-02-01", DecodedQuery(upstream).Single(p => p.Key == "api-version").Value);
        Assert.Equal("true", upstream.Headers["Metadata"]);
        Assert.DoesNotContain(upstream.Headers.Keys, name => name.Equals("X-IDENTITY-HEADER", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(secret, string.Join('\n', upstream.Headers.Values), StringComparison.Ordinal);

        foreach (var (query, status) in new[]
        {
            ($"resource={Uri.EscapeDataString(ProxyCalls.Arm)}&api-version=2018-02-01", 400),
            ("api-version=2019-08-01", 400),
            ($"resource={Uri.EscapeDataString(ProxyCalls.Arm)}&api-version=2019-08-01&client_id={Guid.NewGuid()}", 400),
            ($"resource={Uri.EscapeDataString(ProxyCalls.Arm)}&api-version=2019-08-01&bypass_cache=true", 400),
        })
        {
            var refused = await RawHttp.GetAsync(proxy.ClientAddress, "/msi/token?" + query, header, from: "127.0.0.2");
            Assert.Equal(status, refused.Status);
            using var error = JsonDocument.Parse(refused.Body);
            Assert.Equal(["statusCode", "message", "correlationId"], error.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal(status, error.RootElement.GetProperty("statusCode").GetInt32());
            Assert.False(string.IsNullOrWhiteSpace(error.RootElement.GetProperty("message").GetString()), refused.BodyText);
            Assert.Equal(refused.Header("x-ms-request-id"), error.RootElement.GetProperty("correlationId").GetString());
        }

        Assert.Single(ProxyCalls.TokenRequests(emulator));
    }

    [Fact]
    public async Task An_upstream_error_reaches_an_App_Service_client_in_its_shape_with_status_and_Retry_After_kept()
    {
        var secret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = "/metadata/identity", Status = 429, RetryAfter = TimeSpan.FromSeconds(30), Times = 10 });
        var settings = WithProof(ProxyCalls.Settings(emulator, ("app", "127.0.0.2", ["system"])), 0, "address+secret", secret);
        settings["MsiProxy:Resilience:WaitingRetryAfterLimit"] = "00:00:00.100"; // a 30 s Retry-After is not waited for: answered
        await using var proxy = await ProxyHost.StartAsync(settings);

        var answer = await RawHttp.GetAsync(proxy.ClientAddress, $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}",
            [("X-IDENTITY-HEADER", secret)], from: "127.0.0.2");

        Assert.Equal(429, answer.Status);
        Assert.NotNull(answer.Header("Retry-After"));
        using var error = JsonDocument.Parse(answer.Body);
        Assert.Equal(429, error.RootElement.GetProperty("statusCode").GetInt32());
        Assert.False(error.RootElement.TryGetProperty("error", out _), answer.BodyText);
        Assert.NotEmpty(ProxyCalls.TokenRequests(emulator));
    }

    /// <summary>
    /// MSAL sends its CAE parameters to the App Service endpoint too (msal-node and MSAL.NET add them in the code every
    /// source shares; MSAL's revocation spec names App Service): <c>xms_cc</c> with client capabilities — which
    /// Azure.Identity asks for whenever an Azure SDK client enables CAE — and <c>token_sha256_to_refresh</c> after a claims
    /// challenge. Refusing them would break those applications; they get what the IMDS path gives.
    /// </summary>
    [Fact]
    public async Task Client_capabilities_and_token_revocation_work_on_the_App_Service_endpoint_as_on_the_IMDS_path()
    {
        var secret = NewSecret();
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(WithProof(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])), 0, "address+secret", secret));
        var resource = ResourceFor(SdkKind.MsalNode, "appsvc-cae");

        var capable = await SdkClientRunner.RunAppServiceAsync(new Uri(proxy.ClientAddress, "/msi/token"), secret,
            Request(SdkKind.MsalNode, resource) with { ClientCapabilities = ["cp1"] });

        Assert.True(capable.Ok, capable.ToString());
        Assert.Contains(capable.Token, emulator.State.IssuedTokens);
        Assert.Contains(KeyValuePair.Create("xms_cc", "cp1"), DecodedQuery(Assert.Single(TokenRequestsFor(emulator.State, resource))));

        var path = $"/msi/token?api-version=2019-08-01&resource={Uri.EscapeDataString(resource)}&xms_cc=cp1";
        (string, string)[] header = [("X-IDENTITY-HEADER", secret)];
        var otherHash = await RawHttp.GetAsync(proxy.ClientAddress, $"{path}&token_sha256_to_refresh={Sha256("some other token")}", header);
        Assert.Equal(200, otherHash.Status);
        Assert.Equal(capable.Token, AccessToken(otherHash));
        Assert.Single(TokenRequestsFor(emulator.State, resource));

        var revoked = await RawHttp.GetAsync(proxy.ClientAddress, $"{path}&token_sha256_to_refresh={Sha256(capable.Token!)}", header);
        Assert.Equal(200, revoked.Status);
        Assert.NotEqual(capable.Token, AccessToken(revoked));
        Assert.Contains(AccessToken(revoked), emulator.State.IssuedTokens);
        var refetch = TokenRequestsFor(emulator.State, resource);
        Assert.Equal(2, refetch.Count);
        Assert.Contains(KeyValuePair.Create("bypass_cache", "true"), DecodedQuery(refetch[1]));
        Assert.Contains(KeyValuePair.Create("xms_cc", "cp1"), DecodedQuery(refetch[1]));

        static string? AccessToken(RawHttpResponse response)
        {
            using var json = JsonDocument.Parse(response.Body);
            return json.RootElement.GetProperty("access_token").GetString();
        }
    }

    internal static string NewSecret() => Convert.ToHexString(RandomNumberGenerator.GetBytes(24));

    internal static string Sha256(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    internal static Dictionary<string, string?> WithProof(Dictionary<string, string?> settings, int client, string proof, string secret)
    {
        settings[$"MsiProxy:Clients:{client}:Proof"] = proof;
        settings[$"MsiProxy:Clients:{client}:IdentityHeaderSha256"] = Sha256(secret);
        return settings;
    }

    private static async Task<IReadOnlyList<CapturedLog>> AuditAsync(ProxyHost proxy, int count)
    {
        await CoreAssert.RequestLogLinesAsync(proxy, count);
        var lines = proxy.Logs.Events.Where(e => e.Category == MsiProxyTelemetry.AuditCategory).ToList();
        Assert.Equal(count, lines.Count);
        return lines;
    }
}
