using System.Diagnostics;
using MsiProxy.Caching;
using MsiProxy.Clients;
using MsiProxy.Requests;
using MsiProxy.Telemetry;
using MsiProxy.Upstreams;

namespace MsiProxy.Tokens;

/// <summary>
/// <c>GET /metadata/identity/oauth2/token</c>, after the gate: validate the request → bind the identity the client
/// may use → cache → (on a miss, within the client's rate) upstream. Every decision is audited.
/// </summary>
public sealed class TokenEndpoint(TokenCache cache, UpstreamTokenClient upstream, ClientRateLimiter clientLimits,
    AuditLog audit, MsiProxyTelemetry telemetry, TimeProvider time)
{
    public async Task HandleAsync(HttpContext context)
    {
        var request = context.GetProxyRequest()!;
        var client = request.Client!;
        if (!TokenRequest.TryParse(request.Query, out var tokenRequest, out var error))
        {
            await Refuse(context, request, "bad_request", StatusCodes.Status400BadRequest, "invalid_request", error);
            return;
        }

        request.Resource = tokenRequest.Resource;
        if (client.Resolve(tokenRequest.Identity) is not { } identity)
        {
            request.Identity = tokenRequest.Identity;
            // Name the client and what it asked for — never what it (or anyone else) is bound to.
            await Refuse(context, request, "identity", StatusCodes.Status403Forbidden, "forbidden",
                $"Client {client.Name} may not use identity {tokenRequest.Identity}");
            return;
        }

        request.Identity = identity;
        var key = new TokenCacheKey(identity, tokenRequest.Resource, TokenCacheKey.FamilyOf(tokenRequest.ApiVersion), tokenRequest.Authority);

        // Only requests that would make an upstream call spend the client's budget: hits and callers joining a fetch
        // already under way cost the upstream nothing, and refusing them would only hurt a busy but well-behaved client.
        if ((tokenRequest.BypassCache || cache.WouldFetch(key)) && !clientLimits.TryAcquire(client.Name, out var wait))
        {
            telemetry.ClientThrottled.Add(1, new KeyValuePair<string, object?>("msiproxy.client", client.Name));
            request.Outcome = "throttled";
            audit.Decision(request, "throttled", null, 429);
            await ImdsErrors.WriteAsync(context, StatusCodes.Status429TooManyRequests, "too_many_requests",
                $"Client {client.Name} is over its request rate for tokens that are not cached", wait);
            return;
        }

        // The upstream URL is built only when the cache actually fetches: hits never need it (it was ~500 B per hit).
        var result = await cache.GetAsync(key, tokenRequest.BypassCache,
            purpose => upstream.FetchAsync(tokenRequest.ToUpstreamPathAndQuery(identity, tokenRequest.BypassCache), purpose, CancellationToken.None),
            context.RequestAborted);

        request.Outcome = result.Outcome switch
        {
            CacheOutcome.Hit => "hit",
            CacheOutcome.HitRefreshing => "refresh",
            CacheOutcome.Bypass => "bypass",
            _ => "miss",
        };
        Activity.Current?.SetTag("msiproxy.cache", request.Outcome);
        if (result.Outcome is CacheOutcome.Hit or CacheOutcome.HitRefreshing)
        {
            telemetry.CacheHits.Add(1);
        }
        else
        {
            telemetry.CacheMisses.Add(1);
        }

        if (result.Token is { } token)
        {
            request.Upstream ??= result.Upstream;
            audit.Decision(request, result.Outcome is CacheOutcome.Hit or CacheOutcome.HitRefreshing ? "cache" : "fetched", null, 200);
            await WriteTokenAsync(context, token);
            return;
        }

        var failure = result.Failure!;
        request.Upstream = failure.Upstream;
        request.Outcome = failure.IsSuccess ? request.Outcome : "error";
        audit.Decision(request, failure.IsSuccess ? "fetched" : "upstream_error", failure, failure.Status);
        await WriteUpstreamAsync(context, failure);
    }

    private async Task WriteTokenAsync(HttpContext context, CachedToken token)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ImdsErrors.JsonContentType;
        var buffer = response.BodyWriter.GetSpan(token.MaxBodyLength);
        var length = token.WriteBody(time.GetUtcNow(), buffer);
        response.ContentLength = length;
        response.BodyWriter.Advance(length);
        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }

    /// <summary>The upstream's answer passes through unchanged (status, body, content type, Retry-After).</summary>
    private static async Task WriteUpstreamAsync(HttpContext context, UpstreamResponse upstreamResponse)
    {
        var response = context.Response;
        response.StatusCode = upstreamResponse.Status;
        if (upstreamResponse.ContentType is { } contentType)
        {
            response.ContentType = contentType;
        }

        if (upstreamResponse.RetryAfter is { } retryAfter)
        {
            ImdsErrors.SetRetryAfter(response, retryAfter);
        }

        response.ContentLength = upstreamResponse.Body.Length;
        await response.Body.WriteAsync(upstreamResponse.Body, context.RequestAborted);
    }

    private Task Refuse(HttpContext context, ProxyRequest request, string reason, int status, string error, string description)
    {
        request.Outcome = reason == "identity" ? "denied" : "invalid";
        request.DenialReason = reason;
        telemetry.Denials.Add(1, new KeyValuePair<string, object?>("reason", reason));
        audit.Decision(request, "denied:" + reason, null, status);
        return ImdsErrors.WriteAsync(context, status, error, description);
    }
}
