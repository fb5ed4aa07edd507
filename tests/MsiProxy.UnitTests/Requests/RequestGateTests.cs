using System.Net;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Requests;
using MsiProxy.Responses;

namespace MsiProxy.UnitTests.Requests;

/// <summary>
/// The gate's decisions on their own, one request at a time on a <see cref="DefaultHttpContext"/>: each refusal with its
/// status, reason and body, in the order the gate checks, and what a let-through request carries on. The same
/// decisions through Kestrel and the emulator are in tests/MsiProxy.Tests (BadInputTests, CallerIdentityTests).
/// </summary>
public sealed class RequestGateTests
{
    private const string TokenTarget = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";
    private static readonly IPAddress Registered = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress Stranger = IPAddress.Parse("127.0.0.9");
    private const string Secret = "the-containers-identity-header";

    private readonly ClientRegistry _clients = new(TimeProvider.System);
    private readonly MsiProxyOptions _options = new() { HoldTimeout = TimeSpan.FromMilliseconds(50) };

    public RequestGateTests() => Register("app", Registered);

    [Fact]
    public async Task A_registered_caller_with_metadata_is_let_through_with_the_canonical_path_and_the_parsed_query()
    {
        var context = Request(TokenTarget.Replace("/oauth2/token", "/OAuth2/%74oken/", StringComparison.Ordinal));
        context.Request.Headers["X-Forwarded-For"] = "10.0.0.1";
        context.Request.Headers.UserAgent = "azsdk-net-Identity/1.17.0";

        var request = Assert.IsType<ImdsRequest>((await CheckAsync(context)).Request);

        Assert.Equal("app", request.Client.Name);
        Assert.Equal(Registered, request.Caller);
        Assert.Same(ImdsEndpoints.Token, request.Endpoint);
        Assert.Equal("/metadata/identity/oauth2/token", request.Path);
        Assert.Equal("https://vault.azure.net", request.Query["resource"]);
        Assert.Equal(new ForwardedHeaders(null, "azsdk-net-Identity/1.17.0", null), request.Headers); // X-Forwarded-For is not among them
    }

    [Fact]
    public async Task A_path_outside_the_endpoint_table_is_404_before_anything_else()
    {
        var context = Request("/metadata/identity/oauth2/token/../../../admin?x=1", method: "POST", metadata: false, from: Stranger);
        var refusal = Refused(await CheckAsync(context), 404, "path");
        Assert.Equal(ImdsErrors.NotFound, refusal.Body.ToArray());
    }

    [Fact]
    public async Task Another_method_is_405_with_allow_get()
    {
        var refusal = Refused(await CheckAsync(Request(TokenTarget, method: "POST")), 405, "method");
        Assert.Equal("GET", refusal.Allow);
    }

    [Fact]
    public async Task An_announced_body_beyond_the_limit_is_413()
    {
        var context = Request(TokenTarget);
        context.Request.ContentLength = RequestGate.MaxRequestBodySize + 1;
        Refused(await CheckAsync(context), 413, "body");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("True")]
    [InlineData("true, true")]
    public async Task Without_exactly_metadata_true_it_is_imds_own_400_even_for_a_stranger_so_a_probe_is_answered_at_once(string? metadata)
    {
        var context = Request(TokenTarget, metadata: false, from: Stranger);
        if (metadata is not null)
        {
            context.Request.Headers["Metadata"] = metadata;
        }

        var refusal = Refused(await CheckAsync(context), 400, "metadata_header");
        Assert.Equal(ImdsErrors.MetadataHeaderMissing, refusal.Body.ToArray());
    }

    [Fact]
    public async Task The_caller_is_its_tcp_address_never_a_header()
    {
        var context = Request(TokenTarget, from: Stranger);
        context.Request.Headers["X-Forwarded-For"] = Registered.ToString();
        context.Request.Headers["X-Real-IP"] = Registered.ToString();

        var refusal = Refused(await CheckAsync(context), 403, "unregistered");
        Assert.Contains($"Caller {Stranger} is not a registered client", ImdsErrors.Text(refusal.Body.Span), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_ipv4_mapped_address_is_the_same_caller()
    {
        var request = (await CheckAsync(Request(TokenTarget, from: Registered.MapToIPv6()))).Request;
        Assert.Equal("app", request?.Client.Name);
    }

    [Fact]
    public async Task A_client_still_being_set_up_is_503_with_retry_after_once_its_hold_ends()
    {
        Register("starting", Stranger, ready: false);
        var refusal = Refused(await CheckAsync(Request(TokenTarget, from: Stranger)), 503, "pending");
        Assert.Equal(TimeSpan.FromSeconds(1), refusal.RetryAfter);
    }

    [Fact]
    public async Task An_endpoint_not_enabled_for_the_client_is_403()
    {
        var refusal = Refused(await CheckAsync(Request("/metadata/instance/compute/userData?api-version=2021-01-01&format=text")), 403, "endpoint");
        Assert.Contains("endpoint 'userdata' is not enabled", ImdsErrors.Text(refusal.Body.Span), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("&resource=x", "Duplicate query parameter 'resource'")]
    [InlineData("&x-forwarded-for=1", "Unsupported query parameter 'x-forwarded-for'")]
    [InlineData("&%ZZ=1", "The query string has malformed percent-encoding")]
    public async Task A_query_the_endpoint_does_not_take_is_400_naming_why(string extra, string why)
    {
        var refusal = Refused(await CheckAsync(Request(TokenTarget + extra)), 400, "query");
        Assert.Contains(why, ImdsErrors.Text(refusal.Body.Span), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_app_service_endpoint_needs_its_identity_header()
    {
        var refusal = Refused(await CheckAsync(Request("/msi/token?api-version=2019-08-01&resource=r", metadata: false)), 401, "identity_header_missing");
        Assert.Contains("X-IDENTITY-HEADER", ImdsErrors.Text(refusal.Body.Span), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_must_prove_a_secret_is_refused_on_the_imds_path_and_with_a_wrong_secret_and_served_with_its_own()
    {
        Register("secretive", Stranger, ProofPolicy.AddressAndSecret);

        Refused(await CheckAsync(Request(TokenTarget, from: Stranger)), 403, "proof");
        Refused(await CheckAsync(AppService(Stranger, "not-" + Secret)), 401, "identity_header_wrong");
        Assert.Equal("secretive", (await CheckAsync(AppService(Stranger, Secret))).Request?.Client.Name);
    }

    [Fact]
    public async Task A_client_found_by_its_secret_alone_is_still_held_to_its_address_range()
    {
        Register("by-secret", IPAddress.Parse("127.0.1.0"), ProofPolicy.Secret, range: "127.0.1.0/24");

        Assert.Equal("by-secret", (await CheckAsync(AppService(IPAddress.Parse("127.0.1.7"), Secret))).Request?.Client.Name);
        Refused(await CheckAsync(AppService(Stranger, Secret)), 403, "address");
    }

    private ValueTask<GateResult> CheckAsync(HttpContext context)
    {
        var monitor = new FixedOptions(_options);
        return new RequestGate(_clients, new EndpointAccess(monitor), monitor).CheckAsync(context);
    }

    private static BodyAnswer Refused(GateResult result, int status, string reason)
    {
        Assert.Null(result.Request);
        var refusal = Assert.IsType<Decision>(result.Refusal);
        Assert.Equal((status, reason), (refusal.Status, refusal.Reason));
        return Assert.IsType<BodyAnswer>(refusal.Answer);
    }

    private void Register(string name, IPAddress address, ProofPolicy proof = ProofPolicy.Address, bool ready = true, string? range = null) =>
        _clients.Register(new ClientRegistration
        {
            Name = name,
            Address = range is null ? AddressRange.ForAddress(address) : AddressRange.Parse(range),
            Source = "test",
            Identities = [IdentityBinding.Any],
            Proof = proof,
            IdentityHeader = proof == ProofPolicy.Address ? null : IdentityHeaderDigest.Of(Secret),
            Ready = ready,
        });

    private static DefaultHttpContext AppService(IPAddress from, string secret)
    {
        var context = Request("/msi/token?api-version=2019-08-01&resource=r", metadata: false, from: from);
        context.Request.Headers[RequestGate.IdentityHeaderName] = secret;
        return context;
    }

    private static DefaultHttpContext Request(string rawTarget, string method = "GET", bool metadata = true, IPAddress? from = null)
    {
        var context = new DefaultHttpContext();
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        context.Request.Method = method;
        context.Connection.RemoteIpAddress = from ?? Registered;
        if (metadata)
        {
            context.Request.Headers["Metadata"] = "true";
        }

        return context;
    }

    private sealed class FixedOptions(MsiProxyOptions value) : IOptionsMonitor<MsiProxyOptions>
    {
        public MsiProxyOptions CurrentValue => value;

        public MsiProxyOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<MsiProxyOptions, string?> listener) => null;
    }
}
