using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;
using MsiProxy.Tests.Tokens;
using static MsiProxy.Tests.Clients.SdkExpectations;

namespace MsiProxy.Tests.Clients;

/// <summary>
/// Issue 15 items 1–4: where the proxy answers real clients differently from IMDS, and real applications break. Each
/// test states IMDS's behaviour (the emulator's, ../shared/reference/imds.md) and fails against a proxy that differs.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class SdkDialectTests
{
    private const string IdentityNotFoundBody = "{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}";
    private static readonly UserAssignedIdentity Bound = ProxyCalls.UserAssigned(0);
    private static readonly UserAssignedIdentity NotBound = ProxyCalls.UserAssigned(1);
    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    /// <summary>
    /// Item 1: msal-node's ManagedIdentityApplication({ clientCapabilities: ["cp1"] }) (continuous access evaluation)
    /// adds xms_cc=cp1, which IMDS accepts: the client gets its token, and the upstream receives the capability.
    /// </summary>
    [Fact]
    public async Task Item1_msal_node_with_client_capabilities_gets_a_token_and_xms_cc_reaches_the_upstream()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(SdkKind.MsalNode, ProxyCalls.Arm) with { ClientCapabilities = ["cp1"] });

        Assert.True(result.Ok, result.ToString());
        Assert.Contains(result.Token, emulator.State.IssuedTokens);
        var upstream = Assert.Single(ProxyCalls.TokenRequests(emulator));
        Assert.Contains(KeyValuePair.Create("xms_cc", "cp1"), DecodedQuery(upstream));
        Assert.Equal("200", Assert.Single(await CoreAssert.RequestLogLinesAsync(proxy, 1)).Value("StatusCode"));
    }

    /// <summary>
    /// Item 1: token_sha256_to_refresh (the SHA-256, hex, of a token the caller knows is revoked) is accepted. A hash
    /// that is not the cached token's changes nothing (served from the cache); the cached token's own hash makes the
    /// proxy fetch a new token, with bypass_cache=true so IMDS does not hand back its cached one either.
    /// </summary>
    [Fact]
    public async Task Item1_token_sha256_to_refresh_is_accepted_and_refetches_only_when_it_names_the_cached_token()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.2", ["system"])));
        using var app = proxy.CreateClient("127.0.0.2");
        var cached = await ProxyCalls.TokenAsync(app);
        Assert.Equal(HttpStatusCode.OK, cached.Status);

        var otherHash = await ProxyCalls.TokenAsync(app, extraQuery: $"token_sha256_to_refresh={Sha256Hex("some other token")}");

        Assert.True(otherHash.Status == HttpStatusCode.OK, otherHash.Body);
        Assert.Equal(cached.AccessToken, otherHash.AccessToken);
        Assert.Single(ProxyCalls.TokenRequests(emulator));

        var revoked = await ProxyCalls.TokenAsync(app, extraQuery: $"token_sha256_to_refresh={Sha256Hex(cached.AccessToken!)}");

        Assert.True(revoked.Status == HttpStatusCode.OK, revoked.Body);
        Assert.NotEqual(cached.AccessToken, revoked.AccessToken);
        var refetch = ProxyCalls.TokenRequests(emulator)[^1];
        Assert.Equal(2, ProxyCalls.TokenRequests(emulator).Count);
        Assert.Contains(KeyValuePair.Create("bypass_cache", "true"), DecodedQuery(refetch));
        Assert.Contains(revoked.AccessToken, emulator.State.IssuedTokens);
    }

    /// <summary>
    /// Item 2: an identity the caller is not bound to gets IMDS's own answer for an identity it does not know — the
    /// same status, bytes and content type as the emulator's — so clients that fall back on a 400 do: like
    /// <c>az login --identity --username &lt;object id&gt;</c>, which asks by client_id first, then by object_id.
    /// </summary>
    [Fact]
    public async Task Item2_an_unbound_identity_gets_imds_own_identity_not_found_and_a_cli_style_fallback_to_object_id_works()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", [$"object_id={Bound.ObjectId}"])));
        var byClientId = $"{ImdsRequests.TokenPath}?resource={Uri.EscapeDataString(ProxyCalls.Arm)}&api-version=2018-02-01&client_id={Bound.ObjectId}";
        var imds = await RawHttp.GetAsync(emulator.BaseAddress, byClientId, Metadata);
        Assert.Equal(400, imds.Status);
        Assert.Equal(IdentityNotFoundBody, imds.BodyText);
        var upstreamBefore = ProxyCalls.TokenRequests(emulator).Count;

        var first = await RawHttp.GetAsync(proxy.ClientAddress, byClientId, Metadata);

        Assert.True(first.Status == 400, $"{first.Status}: {first.BodyText}");
        Assert.Equal(imds.BodyText, first.BodyText);
        Assert.Equal(imds.Header("Content-Type"), first.Header("Content-Type"));
        Assert.Equal(upstreamBefore, ProxyCalls.TokenRequests(emulator).Count);

        var fallback = await RawHttp.GetAsync(proxy.ClientAddress, byClientId.Replace("&client_id=", "&object_id=", StringComparison.Ordinal), Metadata);

        Assert.True(fallback.Status == 200, $"{fallback.Status}: {fallback.BodyText}");
        var upstream = ProxyCalls.TokenRequests(emulator)[^1];
        Assert.Contains(KeyValuePair.Create("object_id", Bound.ObjectId), DecodedQuery(upstream));
        Assert.Equal(upstreamBefore + 1, ProxyCalls.TokenRequests(emulator).Count);
        var lines = await CoreAssert.RequestLogLinesAsync(proxy, 2);
        Assert.Equal("denied", lines[0].Value("Outcome"));
    }

    /// <summary>
    /// Item 2, seen by an SDK: Azure.Identity reports an identity the proxy will not give it exactly as it reports
    /// one IMDS does not know (type and message), instead of a "forbidden" it would not meet on a VM.
    /// </summary>
    [Fact]
    public async Task Item2_azure_identity_reports_an_unbound_identity_exactly_as_it_reports_one_imds_does_not_know()
    {
        await using var imds = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(1));
        var againstImds = await SdkClientRunner.RunAsync(imds.BaseAddress, Request(SdkKind.AzureIdentity, ProxyCalls.Arm) with { ClientId = NotBound.ClientId });
        Assert.False(againstImds.Ok, againstImds.ToString());

        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(2));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", [$"client_id={Bound.ClientId}"])));
        var throughProxy = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(SdkKind.AzureIdentity, ProxyCalls.Arm) with { ClientId = NotBound.ClientId });

        Assert.False(throughProxy.Ok, throughProxy.ToString());
        Assert.Equal(againstImds.ErrorType, throughProxy.ErrorType);
        Assert.Equal(WithoutResponseHeaders(againstImds.Message), WithoutResponseHeaders(throughProxy.Message));
        CoreAssert.NothingUpstream(emulator);
    }

    /// <summary>
    /// Item 3: a throttled upstream (429, with a short Retry-After or none) is not multiplied. A request the client
    /// waits on is retried at most once upstream, then answered 429 with a Retry-After the client can honour.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(null)]
    public async Task Item3_a_throttled_upstream_costs_at_most_two_upstream_requests_and_the_client_sees_429_with_retry_after(int? upstreamRetryAfterSeconds)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule
        {
            PathPrefix = ImdsRequests.TokenPath,
            Status = 429,
            RetryAfter = upstreamRetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            Times = 0,
        });
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])));

        var answer = await RawHttp.GetAsync(proxy.ClientAddress, $"{ImdsRequests.TokenPath}?api-version=2018-02-01&resource={Uri.EscapeDataString(ProxyCalls.Arm)}", Metadata);

        var upstream = ProxyCalls.TokenRequests(emulator).Count;
        var retryAfter = answer.Header("Retry-After");
        Assert.True(answer.Status == 429 && upstream <= 2 && int.TryParse(retryAfter, out var delay) && delay >= 1,
            $"one client request cost {upstream} upstream requests and was answered {answer.Status} with Retry-After {retryAfter ?? "(none)"}: {answer.BodyText}");
    }

    /// <summary>
    /// Item 3, with an SDK that retries 429 when told when (@azure/identity honours Retry-After): however many
    /// attempts it makes, each costs at most two upstream requests.
    /// </summary>
    [Fact]
    public async Task Item3_each_sdk_attempt_against_a_throttled_upstream_costs_at_most_two_upstream_requests()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        emulator.State.Faults.Enqueue(new FaultRule { PathPrefix = ImdsRequests.TokenPath, Status = 429, RetryAfter = TimeSpan.FromSeconds(1), Times = 0 });
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator, ("app", "127.0.0.1", ["system"])));

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(SdkKind.Js, ProxyCalls.Arm) with { Timeout = TimeSpan.FromSeconds(60) });

        Assert.False(result.Ok, result.ToString());
        Assert.False(result.TimedOut, result.ToString());
        var attempts = (await CoreAssert.RequestLogLinesAsync(proxy, 1)).Count;
        var upstream = ProxyCalls.TokenRequests(emulator).Count;
        Assert.True(attempts > 1, $"the SDK made {attempts} attempt(s): it retries a 429 only when the answer carries Retry-After");
        Assert.True(upstream <= 2 * attempts, $"{attempts} SDK attempts cost {upstream} upstream requests");
    }

    /// <summary>
    /// Item 4: a resource id is compared case-insensitively (the binding is written in lower case here) but reaches
    /// the upstream in the client's own spelling.
    /// </summary>
    [Fact]
    public async Task Item4_msi_res_id_reaches_the_upstream_in_the_clients_own_spelling()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync(ProxyCalls.WithUserAssigned(1));
        await using var proxy = await ProxyHost.StartAsync(ProxyCalls.Settings(emulator,
            ("app", "127.0.0.1", [$"msi_res_id={Bound.ResourceId.ToLowerInvariant()}"])));
        Assert.Contains("/resourceGroups/rg/providers/Microsoft.ManagedIdentity/", Bound.ResourceId, StringComparison.Ordinal);

        var result = await SdkClientRunner.RunAsync(proxy.ClientAddress, Request(SdkKind.AzureIdentity, ProxyCalls.Arm) with { ResourceId = Bound.ResourceId });

        Assert.True(result.Ok, result.ToString());
        var upstream = Assert.Single(ProxyCalls.TokenRequests(emulator));
        var sent = Assert.Single(DecodedQuery(upstream), p => p.Key == "msi_res_id").Value;
        Assert.Equal(Bound.ResourceId, sent);
    }

    /// <summary>Azure.Identity quotes the answer's headers (Date, x-ms-request-id…) in its message: they differ per answer.</summary>
    private static string? WithoutResponseHeaders(string? message) =>
        message is null ? null : Regex.Replace(message, @"\nHeaders:\n(?:[^\n]+\n)*", "\nHeaders: (elided)\n");

    private static string Sha256Hex(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
}
