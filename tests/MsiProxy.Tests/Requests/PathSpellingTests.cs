using MsiProxy.Responses;
using static MsiProxy.Tests.Requests.BoundaryFixture;

namespace MsiProxy.Tests.Requests;

/// <summary>
/// Every spelling of a target an attacker would try, sent byte for byte over a socket by a client bound to identity A
/// only. For each: either nothing at all reaches the upstream, or exactly one request does and its raw target — what
/// IMDS would parse — is the canonical request the gate checked. The exploit that opened this work
/// (<c>/metadata/versions/%252e%252e/identity/oauth2/token…&amp;client_id=B</c>) is the first row.
/// </summary>
public sealed class PathSpellingTests(BoundaryFixture boundary) : IClassFixture<BoundaryFixture>
{
    private static readonly string TokenQuery = "?api-version=2018-02-01&resource=" + Uri.EscapeDataString(Resource);
    private static readonly string ForB = TokenQuery + "&client_id=" + B.ClientId;
    private static readonly string ExpectedTokenTarget = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
        + Uri.EscapeDataString(Resource) + "&client_id=" + A.ClientId;

    public static TheoryData<string> Refused => new()
    {
        // Two, three decodings of "." and "/": the gate decodes once and IMDS's alphabet has no '%', '.' or '/' inside a segment.
        "/metadata/versions/%252e%252e/identity/oauth2/token" + ForB,
        "/metadata/instance/%252e%252e/identity/oauth2/token" + ForB,
        "/metadata/instance/%252E%252E/identity/oauth2/token" + ForB,
        "/metadata/instance/.%252e/identity/oauth2/token" + ForB,
        "/metadata/instance/%252e./identity/oauth2/token" + ForB,
        "/metadata/versions/%252e%252e/identity/info?api-version=2018-02-01",
        "/metadata/instance/%25252e%25252e/identity/oauth2/token" + ForB,
        "/metadata/instance/%2e%2e/identity/oauth2/token" + ForB,
        "/metadata/instance/%2E%2e/identity/oauth2/token" + ForB,
        "/metadata/instance/.%2e/identity/oauth2/token" + ForB,
        "/metadata/instance/../identity/oauth2/token" + ForB,
        "/metadata/instance/./../identity/oauth2/token" + ForB,
        "/metadata/identity/oauth2/token/../../identity/oauth2/token" + ForB,
        "/metadata/identity/oauth2/token/." + ForB,
        "/metadata/identity/oauth2/token/.." + ForB,
        "/metadata/instance%2f..%2fidentity/oauth2/token" + ForB,
        "/metadata/instance%2F..%2Fidentity%2Foauth2%2Ftoken" + ForB,
        "/metadata/instance%252f..%252fidentity/oauth2/token" + ForB,
        "/metadata/identity%2foauth2%2ftoken" + ForB,
        // Backslashes, raw and encoded.
        "/metadata/instance\\..\\identity/oauth2/token" + ForB,
        "/metadata/instance%5c..%5cidentity/oauth2/token" + ForB,
        "/metadata/instance%255c..%255cidentity/oauth2/token" + ForB,
        // Overlong UTF-8 for '.' and '/'.
        "/metadata/instance/%c0%ae%c0%ae/identity/oauth2/token" + ForB,
        "/metadata/instance/%e0%80%ae%e0%80%ae/identity/oauth2/token" + ForB,
        "/metadata/instance%c0%afidentity/oauth2/token" + ForB,
        // ;params, trailing dots and spaces, empty segments, NUL and line breaks.
        "/metadata/identity/oauth2/token;x=y" + ForB,
        "/metadata/identity/oauth2/token;" + TokenQuery,
        "/metadata/instance;/../identity/oauth2/token" + ForB,
        "/metadata/identity/oauth2/token." + ForB,
        "/metadata/identity/oauth2/token./" + ForB,
        "/metadata/instance./compute?api-version=2021-02-01",
        "/metadata/identity/oauth2/token%20" + ForB,
        "/metadata/identity/oauth2/token%00" + ForB,
        "/metadata/identity/oauth2/token%0d%0aX-Injected:%20yes" + ForB,
        "//metadata/identity/oauth2/token" + ForB,
        "/metadata//identity/oauth2/token" + ForB,
        "/metadata/identity/oauth2/token//" + ForB,
        // Below the token endpoint, beside it, and outside the table.
        "/metadata/identity/oauth2/token/x" + ForB,
        "/metadata/identity/oauth2/tokenx" + ForB,
        "/metadata/identity/getplatformmetadata?cred-api-version=2.0",
        "/metadata/identity/issuecredential?cred-api-version=2.0",
        "/metadata/instance/compute/userData/x?api-version=2021-02-01",
        "/metadata",
        "/",
        "/healthz",
        "/admin/clients",
        // Absolute form: a proxy-style target pointing anywhere.
        "http://127.0.0.1/metadata/identity/oauth2/token" + ForB,
        "http://169.254.169.254/metadata/identity/oauth2/token" + ForB,
        "HTTP://169.254.169.254:80/metadata/identity/oauth2/token" + ForB,
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_spelling_outside_the_table_is_refused_and_nothing_reaches_the_upstream(string target)
    {
        var (response, upstream) = await boundary.SendAsync(target);

        // Kestrel itself refuses a few of these (400) before the proxy sees them; either way nothing may be forwarded.
        Assert.True(response.Status is 404 or 400, $"{target} → {response.Status} {response.BodyText}");
        if (response.Status == 404)
        {
            Assert.Equal(ImdsErrors.Text(ImdsErrors.NotFound), response.BodyText);
        }

        Assert.Empty(upstream);
    }

    public static TheoryData<string, string> Served => new()
    {
        { "/metadata/identity/oauth2/token" + TokenQuery, ExpectedTokenTarget },
        { "/metadata/identity/oauth2/token/" + TokenQuery, ExpectedTokenTarget },
        { "/METADATA/Identity/OAuth2/TOKEN/" + TokenQuery, ExpectedTokenTarget },
        { "/metadata/identity/oauth2/%74oken" + TokenQuery, ExpectedTokenTarget },
        { "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + Resource, ExpectedTokenTarget },
        { "/metadata/identity/oauth2/token?resource=" + Resource + "&api-version=2018-02-01", ExpectedTokenTarget },
        { "/metadata/identity/oauth2/token" + TokenQuery + "&client_id=" + A.ClientId.ToUpperInvariant(),
            ExpectedTokenTarget.Replace(A.ClientId, A.ClientId.ToUpperInvariant(), StringComparison.Ordinal) },
        { "/metadata/instance/%63ompute?api-version=2021-02-01", "/metadata/instance/compute?api-version=2021-02-01" },
        { "/metadata/instance/compute/vmId?api-version=2021-02-01&format=%74ext", "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text" },
        { "/metadata/instance/COMPUTE/vmId/?API-VERSION=2021-02-01&Format=text", "/metadata/instance/COMPUTE/vmId?api-version=2021-02-01&format=text" },
        { "/Metadata/Instance?api-version=2021-02-01", "/metadata/instance?api-version=2021-02-01" },
        { "/metadata/versions?format=json", "/metadata/versions?format=json" },
        { "/metadata/loadbalancer?api-version=2020-10-01", "/metadata/loadbalancer?api-version=2020-10-01" },
    };

    [Theory]
    [MemberData(nameof(Served))]
    public async Task An_accepted_spelling_reaches_the_upstream_exactly_as_the_canonical_request(string target, string upstreamTarget)
    {
        var (response, upstream) = await boundary.SendAsync(target);

        Assert.True(response.Status == 200, $"{target} → {response.Status} {response.BodyText}");
        var received = Assert.Single(upstream);
        Assert.Equal(upstreamTarget.TrimEnd('?'), received.RawTarget);
    }

    [Theory]
    [InlineData("169.254.169.254")]
    [InlineData("evil.example:8080")]
    [InlineData("127.0.0.1:1")]
    public async Task A_host_header_pointed_elsewhere_changes_nothing_upstream(string host)
    {
        var (response, upstream) = await boundary.SendAsync("/metadata/instance/compute/name?api-version=2021-02-01&format=text", host);

        Assert.Equal(200, response.Status);
        var received = Assert.Single(upstream);
        Assert.Equal(boundary.Emulator.BaseAddress.Authority, received.Headers["Host"]);
        Assert.Equal("/metadata/instance/compute/name?api-version=2021-02-01&format=text", received.RawTarget);
    }

    public static TheoryData<string> QueryAttacks => new()
    {
        TokenQuery + "&client_id=" + A.ClientId + "&client_id=" + B.ClientId,
        TokenQuery + "&client_id=" + A.ClientId + "&Client_Id=" + B.ClientId,
        TokenQuery + "&client_id=" + A.ClientId + "&object_id=" + B.ObjectId,
        TokenQuery + "&client_id=" + A.ClientId + "%26client_id%3D" + B.ClientId,
        TokenQuery + "&client_id=" + B.ClientId + "%00",
        TokenQuery + "&object_id=" + B.ObjectId,
        TokenQuery + "&msi_res_id=" + Uri.EscapeDataString(B.ResourceId),
        TokenQuery + "&mi_res_id=" + Uri.EscapeDataString(B.ResourceId),
        TokenQuery + "&msi-res-id=" + Uri.EscapeDataString(B.ResourceId),
        TokenQuery + "&client_id=system",
        TokenQuery + "&client_id=",
        TokenQuery + "&client_id=%zz",
        TokenQuery + "&bypass_cache=false",
        TokenQuery + "&unknown=1",
        "?api-version=2018-02-01",
        "?resource=" + Resource,
    };

    [Theory]
    [MemberData(nameof(QueryAttacks))]
    public async Task A_query_that_names_another_identity_or_smuggles_one_never_reaches_the_upstream(string query)
    {
        var (response, upstream) = await boundary.SendAsync("/metadata/identity/oauth2/token" + query);

        Assert.Equal(400, response.Status);
        Assert.Empty(upstream);
    }

    [Fact]
    public async Task A_selector_smuggled_inside_the_resource_stays_inside_it()
    {
        var resource = Resource + "&client_id=" + B.ClientId;
        var (response, upstream) = await boundary.SendAsync("/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
            + Resource + "%26client_id%3D" + B.ClientId);

        Assert.Equal(200, response.Status);
        var received = Assert.Single(upstream);
        Assert.Equal("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + Uri.EscapeDataString(resource) + "&client_id=" + A.ClientId,
            received.RawTarget);
        Assert.DoesNotContain(B.ClientId, received.Path, StringComparison.OrdinalIgnoreCase);
    }
}
