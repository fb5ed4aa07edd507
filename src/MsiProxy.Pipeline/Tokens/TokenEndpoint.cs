using Microsoft.Extensions.Options;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Requests;
using MsiProxy.Responses;
using MsiProxy.Upstreams;

namespace MsiProxy.Tokens;

/// <summary>
/// <c>GET /metadata/identity/oauth2/token</c> (and the App Service protocol's <c>/msi/token</c>, which differs only in the
/// shapes of its request and answer), after the gate: the token query's own rules (400) → the identity this
/// client may use (IMDS's "Identity not found", or 403 when operators ask for it) → the cache → on a miss, the upstream.
/// </summary>
internal sealed class TokenEndpoint(TokenCache cache, UpstreamClient upstream, IOptionsMonitor<MsiProxyOptions> options)
{
    public async ValueTask<Decision> DecideAsync(ImdsRequest request, CancellationToken aborted)
    {
        var client = request.Client;
        if (!TokenRequest.TryParse(request.Endpoint.Dialect, request.Query, out var token, out var error))
        {
            return Decided(request, RequestOutcome.Invalid, BodyAnswer.Error(StatusCodes.Status400BadRequest, "invalid_request", error), reason: "query");
        }

        if (client.Resolve(token.Identity) is not { } identity)
        {
            return Decided(request, RequestOutcome.Denied, UnboundIdentity(client.Name, token), token, token.Identity, reason: "identity");
        }

        var key = new TokenCacheKey(identity, token.Resource, TokenCacheKey.FamilyOf(token.ApiVersion), token.Authority, token.ClientCapabilities);
        var result = await cache.GetAsync(key, new CacheDirective(token.BypassCache, token.RevokedTokenSha256),
            (purpose, bypass) => upstream.SendAsync(purpose == FetchPurpose.Request
                ? UpstreamRequest.Waiting(token.UpstreamTarget(identity, bypass), client.Name, request.Headers)
                : UpstreamRequest.InBackground(token.UpstreamTarget(identity, bypass), client.Name), CancellationToken.None),
            aborted).ConfigureAwait(false);

        var outcome = result.Outcome switch
        {
            CacheOutcome.Hit => RequestOutcome.Hit,
            CacheOutcome.HitRefreshing => RequestOutcome.Refresh,
            CacheOutcome.Bypass => RequestOutcome.Bypass,
            _ => RequestOutcome.Miss,
        };
        if (result.HasToken)
        {
            return Decided(request, outcome, new TokenAnswer(result.Token), token, identity, result.Upstream);
        }

        var response = result.PassThrough;
        var passedThrough = response.IsSuccess ? outcome
            : response.ProxyError is "queue_full" or "over_budget" or "expired" ? RequestOutcome.Throttled : RequestOutcome.UpstreamError;
        return Decided(request, passedThrough, BodyAnswer.From(response), token, identity, response.Upstream, response.ProxyError);
    }

    /// <summary>One decision per request, built once: this runs for every token request, cache hits included.</summary>
    private static Decision Decided(ImdsRequest request, RequestOutcome outcome, Answer answer, TokenRequest? token = null,
        IdentitySelector? identity = null, string? upstream = null, string? reason = null) => new(outcome, answer)
    {
        Client = request.Client,
        Endpoint = request.Endpoint,
        Path = request.Path,
        Resource = token?.Resource,
        Identity = identity,
        Upstream = upstream,
        Reason = reason,
    };

    /// <summary>Name the client and what it asked for in a 403 — never what it (or anyone else) is bound to.</summary>
    private BodyAnswer UnboundIdentity(string client, TokenRequest token) => options.CurrentValue.UnboundIdentity == UnboundIdentityAnswer.Forbidden
        ? BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden", $"Client {client} may not use identity {token.Identity}")
        : BodyAnswer.Exact(StatusCodes.Status400BadRequest, ImdsErrors.IdentityNotFound);
}
