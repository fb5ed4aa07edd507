using System.Net;
using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;

namespace MsiProxy.ImdsEmulator.Tests.Tokens;

public sealed class TokenEndpointTests : EmulatorTestBase
{
    private const string Arm = "https://management.azure.com/";

    private static readonly UserAssignedIdentity UserOne = new(
        "11111111-1111-1111-1111-111111111111", "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one");

    private static readonly UserAssignedIdentity UserTwo = new(
        "22222222-2222-2222-2222-222222222222", "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/two");

    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-11-26T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));

    protected override EmulatorOptions Options => new() { UserAssigned = [UserOne, UserTwo] };

    protected override TimeProvider Time => _time;

    private static readonly (string, string)[] Metadata = [("Metadata", "true")];

    [Fact]
    public async Task Missing_metadata_header_gets_the_exact_88_byte_imds_body()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x");

        Assert.Equal(400, response.Status);
        Assert.Equal("{\"error\":\"invalid_request\",\"error_description\":\"Required metadata header not specified\"}", response.BodyText);
        Assert.Equal(88, response.Body.Length);
        Assert.Equal("88", response.Header("Content-Length"));
        Assert.Equal("application/json; charset=utf-8", response.Header("Content-Type"));
        Assert.StartsWith("IMDS/", response.Header("Server"));
    }

    [Theory]
    [InlineData("True")]
    [InlineData("TRUE")]
    [InlineData("false")]
    [InlineData("")]
    public async Task Metadata_header_must_be_exactly_lowercase_true(string value)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", [("Metadata", value)]);

        Assert.Equal(400, response.Status);
        Assert.Equal(88, response.Body.Length);
    }

    [Fact]
    public async Task Unknown_client_id_gets_the_exact_68_byte_identity_not_found_body()
    {
        var response = await RawHttp.GetAsync(
            Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id=99999999-9999-9999-9999-999999999999", Metadata);

        Assert.Equal(400, response.Status);
        Assert.Equal("{\"error\":\"invalid_request\",\"error_description\":\"Identity not found\"}", response.BodyText);
        Assert.Equal(68, response.Body.Length);
        Assert.Equal("application/json; charset=utf-8", response.Header("Content-Type"));
    }

    [Fact]
    public async Task Success_body_has_imds_headers_alphabetical_keys_and_only_string_values()
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/", Metadata);

        Assert.Equal(200, response.Status);
        Assert.Equal("application/json; charset=utf-8", response.Header("Content-Type"));
        Assert.Equal("IMDS/150.870.65.1253", response.Header("Server"));
        Assert.True(Guid.TryParse(response.Header("x-ms-request-id"), out _));
        using var json = JsonDocument.Parse(response.Body);
        var properties = json.RootElement.EnumerateObject().ToList();
        Assert.Equal(
            ["access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource", "token_type"],
            properties.Select(p => p.Name));
        Assert.All(properties, p => Assert.Equal(JsonValueKind.String, p.Value.ValueKind));
        var body = json.RootElement;
        Assert.Equal("86400", body.GetProperty("expires_in").GetString());
        Assert.Equal("86399", body.GetProperty("ext_expires_in").GetString());
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        Assert.Equal((now + 86400).ToString(), body.GetProperty("expires_on").GetString());
        Assert.Equal((now - 300).ToString(), body.GetProperty("not_before").GetString());
        Assert.Equal(Arm, body.GetProperty("resource").GetString());
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        Assert.Equal(new EmulatorOptions().SystemClientId, body.GetProperty("client_id").GetString());
    }

    [Fact]
    public async Task Token_claims_reflect_the_request_and_each_token_is_unique()
    {
        var first = await GetTokenAsync("https://vault.azure.net", $"client_id={UserOne.ClientId}");
        var second = await GetTokenAsync("https://storage.azure.com/", null);

        var claims = ImdsRequests.DecodeClaims(first.GetProperty("access_token").GetString()!);
        Assert.Equal("https://vault.azure.net", claims.GetProperty("aud").GetString());
        Assert.Equal(UserOne.ClientId, claims.GetProperty("appid").GetString());
        Assert.Equal(UserOne.ObjectId, claims.GetProperty("oid").GetString());
        Assert.Equal(new EmulatorOptions().TenantId, claims.GetProperty("tid").GetString());
        Assert.Equal(long.Parse(first.GetProperty("expires_on").GetString()!), claims.GetProperty("exp").GetInt64());
        Assert.Equal(_time.GetUtcNow().ToUnixTimeSeconds(), claims.GetProperty("iat").GetInt64());

        var otherClaims = ImdsRequests.DecodeClaims(second.GetProperty("access_token").GetString()!);
        Assert.NotEqual(claims.GetProperty("uti").GetString(), otherClaims.GetProperty("uti").GetString());
        Assert.Equal(new EmulatorOptions().SystemObjectId, otherClaims.GetProperty("oid").GetString());
        Assert.Equal(2, State.Counters.TokensIssued);
        Assert.Equal(
            [first.GetProperty("access_token").GetString()!, second.GetProperty("access_token").GetString()!],
            State.IssuedTokens);
    }

    [Theory]
    [InlineData("client_id=11111111-1111-1111-1111-111111111111")]
    [InlineData("object_id=AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA")]
    [InlineData("object_id=aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa")]
    [InlineData("msi_res_id=/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one")]
    [InlineData("msi_res_id=%2Fsubscriptions%2Fs%2FresourceGroups%2Frg%2Fproviders%2FMicrosoft.ManagedIdentity%2FuserAssignedIdentities%2Fone")]
    [InlineData("mi_res_id=/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one")]
    public async Task Each_selector_picks_the_user_assigned_identity(string selector)
    {
        var body = await GetTokenAsync(Arm, selector);

        Assert.Equal(UserOne.ClientId, body.GetProperty("client_id").GetString());
        Assert.Equal(UserOne.ObjectId, ImdsRequests.DecodeClaims(body.GetProperty("access_token").GetString()!).GetProperty("oid").GetString());
    }

    [Theory]
    [InlineData("/metadata/identity/oauth2/token?resource=x", "Required query variable 'api-version' is missing")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01", "Required query variable 'resource' is missing")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=", "Required query variable 'resource' is missing")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&resource=y", "Duplicate query parameter 'resource'")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%zz", "Malformed query string: invalid percent-encoding")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=%E0%A4", "Malformed query string: invalid percent-encoding")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id=11111111-1111-1111-1111-111111111111&object_id=aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa", "Only one of client_id, object_id and msi_res_id may be specified")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&msi_res_id=a&mi_res_id=a", "Only one of client_id, object_id and msi_res_id may be specified")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&bypass_cache=yes", "Query variable 'bypass_cache' must be 'true' when specified")]
    [InlineData("/metadata/identity/oauth2/token?api-version=2017-04-02&resource=x", "Invalid api-version '2017-04-02'")]
    public async Task Invalid_requests_get_400_invalid_request_with_a_clear_description(string pathAndQuery, string description)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, pathAndQuery, Metadata);

        Assert.Equal(400, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        Assert.Equal("invalid_request", json.RootElement.GetProperty("error").GetString());
        Assert.Equal(description, json.RootElement.GetProperty("error_description").GetString());
        Assert.Equal(0, State.Counters.TokensIssued);
    }

    [Fact]
    public async Task X_forwarded_for_is_rejected()
    {
        var response = await RawHttp.GetAsync(
            Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", [("Metadata", "true"), ("X-Forwarded-For", "10.0.0.9")]);

        Assert.Equal(400, response.Status);
        Assert.Contains("X-Forwarded-For", response.BodyText);
        Assert.Empty(State.IssuedTokens);
    }

    [Theory]
    [InlineData("/metadata/identity/oauth2/token/")]
    [InlineData("/METADATA/Identity/OAuth2/Token")]
    public async Task Path_is_matched_case_insensitively_with_optional_trailing_slash(string path)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, path + "?api-version=2018-02-01&resource=x", Metadata);

        Assert.Equal(200, response.Status);
    }

    [Fact]
    public async Task Resource_is_decoded_and_echoed_as_sent()
    {
        var encoded = await GetRawTokenAsync("resource=https%3A%2F%2Fvault.azure.net%2F");
        var plus = await GetRawTokenAsync("resource=a+b");

        Assert.Equal("https://vault.azure.net/", encoded.GetProperty("resource").GetString());
        Assert.Equal("a b", plus.GetProperty("resource").GetString());
    }

    [Fact]
    public async Task Cached_token_is_served_again_with_expires_in_counting_down()
    {
        var first = await GetTokenAsync(Arm, null);
        _time.Advance(TimeSpan.FromSeconds(100));
        var second = await GetTokenAsync(Arm, null);

        Assert.Equal(first.GetProperty("access_token").GetString(), second.GetProperty("access_token").GetString());
        Assert.Equal("86300", second.GetProperty("expires_in").GetString());
        Assert.Equal(first.GetProperty("expires_on").GetString(), second.GetProperty("expires_on").GetString());
        Assert.Equal(1, State.Counters.TokensIssued);
        Assert.Equal(2, State.Counters.TokenRequests);
    }

    [Fact]
    public async Task Bypass_cache_issues_a_new_token()
    {
        var first = await GetTokenAsync(Arm, null);
        var bypassed = await GetTokenAsync(Arm, "bypass_cache=true");

        Assert.NotEqual(first.GetProperty("access_token").GetString(), bypassed.GetProperty("access_token").GetString());
        Assert.Equal(2, State.Counters.TokensIssued);
    }

    [Fact]
    public async Task A_token_near_expiry_is_replaced_instead_of_served()
    {
        var first = await GetTokenAsync(Arm, null);
        _time.Advance(TimeSpan.FromHours(24) - TimeSpan.FromMinutes(4));
        var second = await GetTokenAsync(Arm, null);

        Assert.NotEqual(first.GetProperty("access_token").GetString(), second.GetProperty("access_token").GetString());
        Assert.Equal("86400", second.GetProperty("expires_in").GetString());
    }

    [Fact]
    public async Task Different_identities_and_resources_get_different_tokens()
    {
        var system = await GetTokenAsync(Arm, null);
        var user = await GetTokenAsync(Arm, $"client_id={UserOne.ClientId}");
        var otherResource = await GetTokenAsync("https://vault.azure.net", null);

        Assert.Equal(3, new[] { system, user, otherResource }.Select(b => b.GetProperty("access_token").GetString()).Distinct().Count());
    }

    [Fact]
    public async Task Identity_info_returns_the_tenant()
    {
        using var response = await Client.SendAsync(ImdsRequests.Get("/metadata/identity/info?api-version=2018-02-01"));
        var body = await ImdsRequests.ReadJsonAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(new EmulatorOptions().TenantId, body.GetProperty("tenantId").GetString());
    }

    [Fact]
    public async Task Post_to_the_token_endpoint_is_405()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x");
        request.Headers.Add("Metadata", "true");
        using var response = await Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("GET", string.Join(",", response.Content.Headers.Allow));
    }

    [Fact]
    public async Task Request_log_records_caller_headers_and_status()
    {
        using var caller = LoopbackCaller.Create("127.0.0.7", Server.BaseAddress);
        using var response = await caller.SendAsync(ImdsRequests.Token(Arm));

        var record = Assert.Single(State.Requests);
        Assert.Equal("127.0.0.7", record.CallerAddress);
        Assert.Equal("GET", record.Method);
        Assert.Equal("/metadata/identity/oauth2/token", record.Path);
        Assert.Contains("resource=https%3A%2F%2Fmanagement.azure.com%2F", record.Query);
        Assert.Equal("true", record.Headers["Metadata"]);
        Assert.Equal(200, record.Status);
        Assert.Equal(1, record.ConcurrencyAtArrival);
        Assert.Equal(_time.GetUtcNow(), record.ArrivedAt);
    }

    private async Task<JsonElement> GetTokenAsync(string resource, string? extraQuery)
    {
        using var response = await Client.SendAsync(ImdsRequests.Token(resource, extraQuery));
        var body = await ImdsRequests.ReadJsonAsync(response);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToString());
        return body;
    }

    private async Task<JsonElement> GetRawTokenAsync(string query)
    {
        var response = await RawHttp.GetAsync(Server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&" + query, Metadata);
        Assert.Equal(200, response.Status);
        using var json = JsonDocument.Parse(response.Body);
        return json.RootElement.Clone();
    }
}

public sealed class IdentitySelectionTests
{
    private static readonly UserAssignedIdentity Only = new("33333333-3333-3333-3333-333333333333", "cccccccc-cccc-cccc-cccc-cccccccccccc", "/subscriptions/s/x/only");
    private static readonly UserAssignedIdentity Other = new("44444444-4444-4444-4444-444444444444", "dddddddd-dddd-dddd-dddd-dddddddddddd", "/subscriptions/s/x/other");

    [Fact]
    public async Task Without_system_identity_and_several_user_identities_no_selector_is_identity_not_found()
    {
        await using var server = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { SystemAssigned = false, UserAssigned = [Only, Other] });

        var response = await RawHttp.GetAsync(server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", [("Metadata", "true")]);

        Assert.Equal(400, response.Status);
        Assert.Equal(68, response.Body.Length);
    }

    [Fact]
    public async Task Without_system_identity_the_system_client_id_is_identity_not_found()
    {
        var options = new EmulatorOptions { SystemAssigned = false, UserAssigned = [Only, Other] };
        await using var server = await ImdsEmulatorServer.StartAsync(options);

        var response = await RawHttp.GetAsync(
            server.BaseAddress, $"/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x&client_id={options.SystemClientId}", [("Metadata", "true")]);

        Assert.Equal(400, response.Status);
        Assert.Contains("Identity not found", response.BodyText);
    }

    [Fact]
    public async Task Without_system_identity_a_single_user_identity_is_the_default_as_documented()
    {
        await using var server = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { SystemAssigned = false, UserAssigned = [Only] });

        var response = await RawHttp.GetAsync(server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", [("Metadata", "true")]);

        Assert.Equal(200, response.Status);
        Assert.Contains(Only.ClientId, response.BodyText);
    }

    [Fact]
    public async Task Forwarded_for_is_allowed_when_the_switch_is_off()
    {
        await using var server = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { RejectForwardedFor = false });

        var response = await RawHttp.GetAsync(
            server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", [("Metadata", "true"), ("X-Forwarded-For", "1.2.3.4")]);

        Assert.Equal(200, response.Status);
    }

    [Fact]
    public async Task Lenient_mode_answers_the_header_less_probe_with_a_token()
    {
        await using var server = await ImdsEmulatorServer.StartAsync(new EmulatorOptions { RequireMetadataHeader = false });

        var response = await RawHttp.GetAsync(server.BaseAddress, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x");

        Assert.Equal(200, response.Status);
        Assert.Contains("access_token", response.BodyText);
    }
}
