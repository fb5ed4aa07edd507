using System.Net;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Responses;

namespace MsiProxy.Requests;

/// <summary>The gate's verdict: the typed request, or the decision that refuses it.</summary>
internal readonly record struct GateResult(ImdsRequest? Request, Decision? Refusal);

/// <summary>
/// Every client request passes here before anything is read from a cache or sent upstream. In this order:
/// 1. where to — the raw target's path, decoded once, must be an endpoint of the table → 404;
/// 2. how — GET only → 405; no request body beyond the limit → 413;
/// 3. the IMDS SSRF guard — <c>Metadata: true</c> → IMDS's own 400, at once, before any wait (DefaultAzureCredential's
///    header-less probe must get it within its 1 s timeout, whoever sends it);
///    On the App Service endpoint the guard is the secret <c>X-IDENTITY-HEADER</c> instead → 401;
/// 4. who is calling — the TCP peer address, never a header; or, for a client whose proof is its secret alone, the
///    secret (checked against a digest, in constant time) and then the address range it may call from. A caller the
///    registry does not know yet is held while the container monitor looks it up, a client still being set up is held
///    until it is ready, both for at most <c>MsiProxy:HoldTimeout</c> → 403 unregistered, 503 still pending; then the
///    client's proof policy (docs/proof-of-caller.md) → 403 wrong protocol, 401 wrong secret;
/// 5. may this client use this endpoint → 403;
/// 6. the query — unique names, valid encoding, only the endpoint's own parameters → 400.
/// </summary>
internal sealed class RequestGate(ClientRegistry clients, EndpointAccess access, IOptionsMonitor<MsiProxyOptions> options,
    ICallerDiscovery? discovery = null)
{
    public async ValueTask<GateResult> CheckAsync(HttpContext context)
    {
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "/";
        var queryStart = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = queryStart < 0 ? rawTarget.AsSpan() : rawTarget.AsSpan(0, queryStart);
        if (!CanonicalPath.TryMatch(rawPath, out var endpoint, out var path))
        {
            return Refuse(RequestOutcome.Invalid, "path", BodyAnswer.Exact(StatusCodes.Status404NotFound, ImdsErrors.NotFound));
        }

        if (!HttpMethods.IsGet(context.Request.Method))
        {
            return Refuse(RequestOutcome.Invalid, "method", BodyAnswer.Error(StatusCodes.Status405MethodNotAllowed, "method_not_allowed",
                $"Method {context.Request.Method} is not allowed") with { Allow = "GET" }, endpoint, path);
        }

        if (context.Request.ContentLength > MaxRequestBodySize)
        {
            return Refuse(RequestOutcome.Invalid, "body", BodyAnswer.Error(StatusCodes.Status413PayloadTooLarge, "invalid_request",
                "IMDS requests have no body"), endpoint, path);
        }

        var settings = options.CurrentValue;
        string? identityHeader = null;
        if (endpoint.Dialect == Dialect.AppService)
        {
            // The App Service protocol's SSRF guard is its secret header, as IMDS's is Metadata: true.
            if (context.Request.Headers[IdentityHeaderName] is not [{ Length: > 0 } presented])
            {
                return Refuse(RequestOutcome.Denied, "identity_header_missing", BodyAnswer.Error(StatusCodes.Status401Unauthorized, "unauthorized",
                    $"Required header {IdentityHeaderName} not specified"), endpoint, path);
            }

            identityHeader = presented;
        }
        else if (settings.RequireMetadataHeader && !IsExactlyTrue(context.Request.Headers["Metadata"]))
        {
            var body = endpoint.Path.StartsWith("/metadata/identity/", StringComparison.Ordinal)
                ? ImdsErrors.MetadataHeaderMissing : ImdsErrors.InstanceMetadataHeaderMissing;
            return Refuse(RequestOutcome.Invalid, "metadata_header", BodyAnswer.Exact(StatusCodes.Status400BadRequest, body), endpoint, path);
        }

        var caller = context.Connection.RemoteIpAddress is { } remote ? AddressRange.Normalise(remote) : IPAddress.None;

        // A client proving itself by its secret alone is found by it; every other client by its address, and then
        // held to its proof policy.
        var client = identityHeader is null ? null : clients.FindBySecret(identityHeader, caller);
        if (client is null || (client.FoundBySecret && !client.Address.Contains(caller)))
        {
            // Not known here yet: held while the monitor discovers the caller. The hold may register it as a client found
            // by its secret (not in the address index), or as a replica sharing a sibling's secret at its own address.
            var byAddress = await FindReadyClientAsync(caller, settings.HoldTimeout, context.RequestAborted).ConfigureAwait(false);
            var bySecret = identityHeader is null ? null : clients.FindBySecret(identityHeader, caller);
            client = bySecret is not null && bySecret.Address.Contains(caller) ? bySecret : byAddress ?? bySecret;
        }

        if (client is { FoundBySecret: true })
        {
            if (!client.Address.Contains(caller))
            {
                return Refuse(RequestOutcome.Denied, "address", BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden",
                    $"Client {client.Name} may not call from {caller}"), endpoint, path, client);
            }

            if (!client.Ready)
            {
                return Pending(client, endpoint, path);
            }
        }
        else
        {
            if (client is null)
            {
                return Refuse(RequestOutcome.Denied, "unregistered", BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden",
                    $"Caller {caller} is not a registered client of this proxy"), endpoint, path);
            }

            if (!client.Ready)
            {
                return Pending(client, endpoint, path);
            }

            if (ProofRefusal(client, identityHeader) is { } refusal)
            {
                return Refuse(RequestOutcome.Denied, refusal.Reason, refusal.Answer, endpoint, path, client);
            }
        }

        if (!access.MayUse(client, endpoint))
        {
            return Refuse(RequestOutcome.Denied, "endpoint", BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden",
                $"Client {client.Name} may not use {endpoint.Path} (endpoint '{endpoint.Name}' is not enabled for it)"), endpoint, path, client);
        }

        var rawQuery = queryStart < 0 ? [] : rawTarget.AsSpan(queryStart + 1);
        if (!QueryParameters.TryParse(rawQuery, out var query, out var queryError)
            || (queryError = UnsupportedParameter(endpoint, query)) is not null)
        {
            return Refuse(RequestOutcome.Invalid, "query", BodyAnswer.Error(StatusCodes.Status400BadRequest, "invalid_request", queryError!),
                endpoint, path, client);
        }

        return new GateResult(new ImdsRequest(caller, client, endpoint, path, query, ForwardedHeaders.From(context.Request.Headers)), null);
    }

    /// <summary>The App Service protocol's secret header (<c>IDENTITY_HEADER</c> in the container's environment).</summary>
    internal const string IdentityHeaderName = "X-IDENTITY-HEADER";

    /// <summary>
    /// Holds a client found by its address to its policy: <see cref="ProofPolicy.Address"/> needs nothing more;
    /// <see cref="ProofPolicy.AddressAndSecret"/> needs the App Service endpoint and its own secret — the IMDS protocol
    /// carries none, so its IMDS-path requests are refused. (A <see cref="ProofPolicy.Secret"/> client is never found by address.)
    /// </summary>
    private static (string Reason, BodyAnswer Answer)? ProofRefusal(ClientRegistration client, string? identityHeader)
    {
        if (client.Proof == ProofPolicy.Address)
        {
            return null;
        }

        if (identityHeader is null)
        {
            return ("proof", BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden",
                $"Client {client.Name} must ask for tokens at {ImdsEndpoints.AppServiceToken.Path} with its {IdentityHeaderName} (proof '{client.Proof.Name()}')"));
        }

        return client.IdentityHeader!.Matches(identityHeader) ? null
            : ("identity_header_wrong", BodyAnswer.Error(StatusCodes.Status401Unauthorized, "unauthorized",
                $"The {IdentityHeaderName} does not match client {client.Name}'s"));
    }

    /// <summary>The limit Kestrel applies to bodies it reads (set with the listeners); the proxy never reads or forwards one.</summary>
    internal const long MaxRequestBodySize = 64 * 1024;

    private async ValueTask<ClientRegistration?> FindReadyClientAsync(IPAddress caller, TimeSpan hold, CancellationToken aborted)
    {
        var client = clients.Find(caller);
        if (client is { Ready: true } || caller.Equals(IPAddress.None))
        {
            return client;
        }

        using var holding = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        holding.CancelAfter(hold);
        try
        {
            if (client is null && discovery is not null)
            {
                await discovery.DiscoverAsync(caller, holding.Token).ConfigureAwait(false);
                client = clients.Find(caller);
            }

            return client is { Ready: false } ? await clients.WaitUntilReadyAsync(caller, holding.Token).ConfigureAwait(false) : client;
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            return clients.Find(caller); // held long enough: answer with what is known now
        }
    }

    private static string? UnsupportedParameter(ImdsEndpoint endpoint, QueryParameters query)
    {
        var pairs = query.Pairs;
        for (var i = 0; i < pairs.Count; i++)
        {
            if (endpoint.CanonicalParameter(pairs[i].Key) is null)
            {
                return $"Unsupported query parameter '{pairs[i].Key}'";
            }
        }

        return null;
    }

    /// <summary>IMDS wants the value "true", in lower case, once.</summary>
    private static bool IsExactlyTrue(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 1 && values[0] == "true";

    /// <summary>503 + Retry-After rather than 403 for a client still being set up: the SDKs retry it.</summary>
    private static GateResult Pending(ClientRegistration client, ImdsEndpoint endpoint, string path) =>
        Refuse(RequestOutcome.Denied, "pending", BodyAnswer.Error(StatusCodes.Status503ServiceUnavailable, "service_unavailable",
            $"Client {client.Name} is still being set up; retry shortly", TimeSpan.FromSeconds(1)), endpoint, path, client);

    private static GateResult Refuse(RequestOutcome outcome, string reason, BodyAnswer answer, ImdsEndpoint? endpoint = null, string? path = null,
        ClientRegistration? client = null) =>
        new(null, Decision.Refused(outcome, reason, answer) with { Endpoint = endpoint, Path = path, Client = client });
}
