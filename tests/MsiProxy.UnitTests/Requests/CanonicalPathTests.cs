using MsiProxy.Requests;

namespace MsiProxy.UnitTests.Requests;

/// <summary>
/// The canonical path, as a unit: decoded once, IMDS's alphabet only, matched to the endpoint table. What it returns is
/// byte for byte what goes upstream (the integration tests in PathSpellingTests check that on the wire).
/// </summary>
public sealed class CanonicalPathTests
{
    [Theory]
    [InlineData("/metadata/identity/oauth2/token", "token", "/metadata/identity/oauth2/token")]
    [InlineData("/metadata/identity/oauth2/token/", "token", "/metadata/identity/oauth2/token")]
    [InlineData("/Metadata/Identity/OAuth2/Token", "token", "/metadata/identity/oauth2/token")]
    [InlineData("/metadata/identity/oauth2/%74oken", "token", "/metadata/identity/oauth2/token")]
    [InlineData("/metadata/instance", "instance", "/metadata/instance")]
    [InlineData("/metadata/instance/", "instance", "/metadata/instance")]
    [InlineData("/METADATA/INSTANCE/compute/vmId", "instance", "/metadata/instance/compute/vmId")]
    [InlineData("/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress", "instance",
        "/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress")]
    [InlineData("/metadata/instance/compute/userData", "userdata", "/metadata/instance/compute/userData")]
    [InlineData("/metadata/instance/COMPUTE/USERDATA/", "userdata", "/metadata/instance/compute/userData")]
    [InlineData("/metadata/instance/compute/%75serData", "userdata", "/metadata/instance/compute/userData")]
    [InlineData("/metadata/versions", "versions", "/metadata/versions")]
    [InlineData("/metadata/loadbalancer", "loadbalancer", "/metadata/loadbalancer")]
    [InlineData("/metadata/scheduledevents", "scheduledevents", "/metadata/scheduledevents")]
    [InlineData("/metadata/attested/document", "attested", "/metadata/attested/document")]
    [InlineData("/metadata/identity/info", "identity-info", "/metadata/identity/info")]
    public void An_endpoint_of_the_table_matches_with_its_canonical_path(string raw, string endpoint, string canonical)
    {
        Assert.True(CanonicalPath.TryMatch(raw, out var matched, out var path), raw);
        Assert.Equal(endpoint, matched.Name);
        Assert.Equal(canonical, path);
    }

    [Fact]
    public void The_token_path_is_the_table_constant_not_a_copy()
    {
        Assert.True(CanonicalPath.TryMatch("/metadata/identity/oauth2/token/", out _, out var path));
        Assert.Same(ImdsEndpoints.Token.Path, path);
    }

    [Theory]
    [InlineData("")]
    [InlineData("metadata/instance")]
    [InlineData("/")]
    [InlineData("/metadata")]
    [InlineData("/metadata/identity")]
    [InlineData("/metadata/identity/oauth2")]
    [InlineData("/metadata/identity/oauth2/token/extra")]
    [InlineData("/metadata/identity/oauth2/tokenx")]
    [InlineData("/metadata/instance/compute/userData/x")]
    [InlineData("/metadata/attested")]
    [InlineData("/metadata/attested/document/x")]
    [InlineData("/metadata/versions/x")]
    [InlineData("/metadata/identity/getplatformmetadata")]
    [InlineData("/metadata/versions/%252e%252e/identity/oauth2/token")]
    [InlineData("/metadata/versions/%2e%2e/identity/oauth2/token")]
    [InlineData("/metadata/instance/%2e%2e/identity/oauth2/token")]
    [InlineData("/metadata/instance/../identity/oauth2/token")]
    [InlineData("/metadata/instance/./compute")]
    [InlineData("/metadata/instance/compute.")]
    [InlineData("/metadata/instance//compute")]
    [InlineData("//metadata/instance")]
    [InlineData("/metadata/instance/compute//")]
    [InlineData("/metadata/instance%2fcompute")]
    [InlineData("/metadata/instance\\compute")]
    [InlineData("/metadata/instance%5ccompute")]
    [InlineData("/metadata/instance;x=1")]
    [InlineData("/metadata/instance/compute;jsessionid=1")]
    [InlineData("/metadata/instance%00")]
    [InlineData("/metadata/instance%0a")]
    [InlineData("/metadata/instance/%zz")]
    [InlineData("/metadata/instance/%2")]
    [InlineData("/metadata/instance/%c0%ae%c0%ae")]
    [InlineData("/metadata/instance/caf\u00e9")]
    [InlineData("/metadata/instance/caf%c3%a9")]
    [InlineData("/metadata/instance/a b")]
    [InlineData("/metadata/instance/a+b")]
    [InlineData("/metadata/instance/a%20b")]
    [InlineData("/metadata/instance/\u0001")]
    [InlineData("/healthz")]
    [InlineData("/admin/clients")]
    public void Anything_else_is_refused(string raw) =>
        Assert.False(CanonicalPath.TryMatch(raw, out _, out _), raw);
}
