using MsiProxy.Clients;
using MsiProxy.Requests;

namespace MsiProxy.UnitTests.Requests;

/// <summary>
/// The token request on its own, in both dialects: the rules between parameters that the gate's per-endpoint
/// allow-list cannot express, and the upstream target built from the checked values — never from the raw query.
/// </summary>
public sealed class TokenRequestTests
{
    private static QueryParameters Query(string raw)
    {
        Assert.True(QueryParameters.TryParse(raw, out var query, out var error), error);
        return query;
    }

    private static TokenRequest Imds(string raw)
    {
        Assert.True(TokenRequest.TryParse(Dialect.Imds, Query(raw), out var request, out var error), error);
        return request;
    }

    [Theory]
    [InlineData("resource=r", "Required query variable 'api-version' is missing")]
    [InlineData("api-version=2018-02-01", "Required query variable 'resource' is missing")]
    [InlineData("api-version=2018-02-01&resource=", "Required query variable 'resource' is missing")]
    [InlineData("api-version=2018-02-01&resource=r&client_id=a&object_id=b", "Only one of client_id, object_id and msi_res_id may be specified")]
    [InlineData("api-version=2018-02-01&resource=r&msi_res_id=a&mi_res_id=b", "Only one of client_id, object_id and msi_res_id may be specified")]
    [InlineData("api-version=2018-02-01&resource=r&client_id=+", "Query variable 'client_id' is empty")]
    [InlineData("api-version=2018-02-01&resource=r&bypass_cache=false", "Query variable 'bypass_cache' must be 'true' when present")]
    [InlineData("api-version=2018-02-01&resource=r&bypass_cache=True", "Query variable 'bypass_cache' must be 'true' when present")]
    [InlineData("api-version=2018-02-01&resource=r&token_sha256_to_refresh=abc", "Query variable 'token_sha256_to_refresh' must be a SHA-256 digest in hex")]
    [InlineData("api-version=2018-02-01&resource=r&token_sha256_to_refresh=zz00000000000000000000000000000000000000000000000000000000000000",
        "Query variable 'token_sha256_to_refresh' must be a SHA-256 digest in hex")]
    public void An_imds_request_that_breaks_a_rule_is_refused_with_the_rule(string raw, string expected)
    {
        Assert.False(TokenRequest.TryParse(Dialect.Imds, Query(raw), out _, out var error));
        Assert.Equal(expected, error);
    }

    [Theory]
    [InlineData("client_id=C1", "ClientId", "C1")]
    [InlineData("object_id=O1", "ObjectId", "O1")]
    [InlineData("msi_res_id=/subscriptions/s/r", "ResourceId", "/subscriptions/s/r")]
    [InlineData("mi_res_id=/subscriptions/s/r", "ResourceId", "/subscriptions/s/r")]
    public void Each_imds_selector_names_its_kind_of_identity(string selector, string kind, string value)
    {
        var request = Imds("api-version=2018-02-01&resource=r&" + selector);
        Assert.Equal(IdentitySelector.Create(Enum.Parse<SelectorKind>(kind), value), request.Identity);
    }

    [Fact]
    public void No_selector_means_the_clients_default_identity()
    {
        var request = Imds("api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net&bypass_cache=true&xms_cc=cp1");
        Assert.Null(request.Identity);
        Assert.Equal(("2019-08-01", "https://vault.azure.net", true, "cp1"), (request.ApiVersion, request.Resource, request.BypassCache, request.ClientCapabilities));
    }

    [Theory]
    [InlineData("resource=r", "Query variable 'api-version' must be 2019-08-01")]
    [InlineData("api-version=2018-02-01&resource=r", "Query variable 'api-version' must be 2019-08-01")]
    [InlineData("api-version=2019-08-01", "Required query variable 'resource' is missing")]
    [InlineData("api-version=2019-08-01&resource=r&client_id=a&principal_id=b", "Only one of client_id, object_id, principal_id and mi_res_id may be specified")]
    public void An_app_service_request_that_breaks_a_rule_is_refused_with_the_rule(string raw, string expected)
    {
        Assert.False(TokenRequest.TryParse(Dialect.AppService, Query(raw), out _, out var error));
        Assert.Equal(expected, error);
    }

    [Fact]
    public void An_app_service_request_is_fetched_as_the_imds_request_every_sdk_sends()
    {
        Assert.True(TokenRequest.TryParse(Dialect.AppService, Query("api-version=2019-08-01&resource=r&principal_id=P1"), out var request, out var error), error);
        Assert.Equal(TokenRequest.ImdsApiVersionForAppService, request.ApiVersion);
        Assert.Equal(IdentitySelector.Create(SelectorKind.ObjectId, "P1"), request.Identity); // principal_id is App Service's name for the object id
        Assert.False(request.BypassCache);
        Assert.Equal("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r&object_id=P1", request.UpstreamTarget(request.Identity!.Value, false));
    }

    [Fact]
    public void The_upstream_target_escapes_every_value_so_none_can_add_a_parameter()
    {
        var request = Imds("api-version=2018-02-01&resource=" + Uri.EscapeDataString("https://r/&client_id=victim#x") + "&authority=" + Uri.EscapeDataString("a b"));
        var target = request.UpstreamTarget(IdentitySelector.Create(SelectorKind.ClientId, "mine&object_id=other"), bypassCache: false);

        Assert.Equal("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fr%2F%26client_id%3Dvictim%23x"
            + "&client_id=mine%26object_id%3Dother&authority=a%20b", target);
        Assert.True(QueryParameters.TryParse(target.AsSpan(target.IndexOf('?', StringComparison.Ordinal) + 1), out var sent, out _));
        Assert.Equal(["api-version", "resource", "client_id", "authority"], sent.Pairs.Select(p => p.Key)); // what the upstream reads
    }

    [Fact]
    public void The_revoked_token_digest_goes_upstream_only_with_a_bypass()
    {
        var digest = new string('A', 64);
        var request = Imds($"api-version=2018-02-01&resource=r&token_sha256_to_refresh={digest}");
        Assert.Equal(Convert.FromHexString(digest), request.RevokedTokenSha256);

        Assert.DoesNotContain("token_sha256_to_refresh", request.UpstreamTarget(IdentitySelector.SystemAssigned, bypassCache: false), StringComparison.Ordinal);
        Assert.EndsWith("&bypass_cache=true&token_sha256_to_refresh=" + digest.ToLowerInvariant(),
            request.UpstreamTarget(IdentitySelector.SystemAssigned, bypassCache: true), StringComparison.Ordinal);
    }
}
