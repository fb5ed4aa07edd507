using Microsoft.Extensions.Options;
using MsiProxy.Caching;
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
        var decided = new Decision(RequestOutcome.Failed, Decision.Failed().Answer) { Client = client, Endpoint = request.Endpoint, Path = request.Path };
        if (!TokenRequest.TryParse(request.Endpoint.Dialect, request.Query, out var token, out var error))
        {
            return decided with
            {
                Outcome = RequestOutcome.Invalid, Reason = "query", Answer = BodyAnswer.Error(StatusCodes.Status400BadRequest, "invalid_request", error),
            };
        }

        decided = decided with { Resource = token.Resource, Identity = token.Identity };
        if (client.Resolve(token.Identity) is not { } identity)
        {
            return decided with { Outcome = RequestOutcome.Denied, Reason = "identity", Answer = UnboundIdentity(client.Name, token) };
        }

        var key = new TokenCacheKey(identity, token.Resource, TokenCacheKey.FamilyOf(token.ApiVersion), token.Authority, token.ClientCapabilities);
        var result = await cache.GetAsync(key, new CacheDirective(token.BypassCache, token.RevokedTokenSha256),
            (purpose, bypass) => upstream.SendAsync(purpose == FetchPurpose.Request
                ? UpstreamRequest.Waiting(token.UpstreamTarget(identity, bypass), client.Name, request.Headers)
                : UpstreamRequest.InBackground(token.UpstreamTarget(identity, bypass), client.Name), CancellationToken.None),
            aborted).ConfigureAwait(false);

        decided = decided with { Identity = identity, Upstream = result.Upstream };
        var outcome = result.Outcome switch
        {
            CacheOutcome.Hit => RequestOutcome.Hit,
            CacheOutcome.HitRefreshing => RequestOutcome.Refresh,
            CacheOutcome.Bypass => RequestOutcome.Bypass,
            _ => RequestOutcome.Miss,
        };
        if (result.HasToken)
        {
            return decided with { Outcome = outcome, Answer = new TokenAnswer(result.Token) };
        }

        var response = result.PassThrough;
        return decided with
        {
            Outcome = response.IsSuccess ? outcome : response.ProxyError is "queue_full" or "over_budget" or "expired" ? RequestOutcome.Throttled : RequestOutcome.UpstreamError,
            Reason = response.ProxyError,
            Upstream = response.Upstream,
            Answer = BodyAnswer.From(response),
        };
    }

    /// <summary>Name the client and what it asked for in a 403 — never what it (or anyone else) is bound to.</summary>
    private BodyAnswer UnboundIdentity(string client, TokenRequest token) => options.CurrentValue.UnboundIdentity == UnboundIdentityAnswer.Forbidden
        ? BodyAnswer.Error(StatusCodes.Status403Forbidden, "forbidden", $"Client {client} may not use identity {token.Identity}")
        : BodyAnswer.Exact(StatusCodes.Status400BadRequest, ImdsErrors.IdentityNotFound);
}
