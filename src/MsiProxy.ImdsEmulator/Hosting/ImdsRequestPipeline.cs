using Microsoft.AspNetCore.Http;
using MsiProxy.ImdsEmulator.Faults;
using MsiProxy.ImdsEmulator.Instance;
using MsiProxy.ImdsEmulator.Protocol;
using MsiProxy.ImdsEmulator.Tokens;

namespace MsiProxy.ImdsEmulator.Hosting;

/// <summary>
/// Every request to the emulated IMDS goes through here: log and count it, apply the identity limits, then a
/// scripted fault, then route to the endpoint.
/// </summary>
internal sealed class ImdsRequestPipeline
{
    private const string IdentityRoot = "/metadata/identity";
    private const string TokenPath = "/metadata/identity/oauth2/token";

    private readonly EmulatorState _state;
    private readonly ImdsResponseHeaders _headers;
    private readonly FaultApplier _faults;
    private readonly TokenEndpoint _token;
    private readonly IdentityInfoEndpoint _identityInfo;
    private readonly InstanceEndpoint _instance;
    private readonly VersionsEndpoint _versions;
    private readonly OtherCategories _otherCategories;

    public ImdsRequestPipeline(EmulatorState state)
    {
        _state = state;
        _headers = new ImdsResponseHeaders(state.Options.ServerHeader);
        _faults = new FaultApplier(state, _headers);
        _token = new TokenEndpoint(state, _headers);
        _identityInfo = new IdentityInfoEndpoint(state, _headers);
        _instance = new InstanceEndpoint(state, _headers);
        _versions = new VersionsEndpoint(_headers);
        _otherCategories = new OtherCategories(state, _headers);
    }

    public async Task HandleAsync(HttpContext context)
    {
        var concurrency = _state.Counters.Enter();
        _state.Counters.RequestArrived();
        var request = context.Request;
        var record = _state.Log(
            request.Method,
            request.Path.Value ?? "/",
            request.QueryString.Value ?? string.Empty,
            context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? string.Empty,
            request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            context.Connection.RemoteIpAddress?.ToString() ?? string.Empty,
            context.Connection.RemotePort,
            concurrency);
        try
        {
            await DispatchAsync(context, record).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The caller went away mid-request (e.g. during an injected delay); nothing left to answer.
        }
        finally
        {
            var aborted = context.RequestAborted.IsCancellationRequested && !context.Response.HasStarted;
            record.Complete(aborted ? 0 : context.Response.StatusCode);
            _state.Counters.Leave();
        }
    }

    private async Task DispatchAsync(HttpContext context, RequestRecord record)
    {
        var path = context.Request.Path.Value ?? "/";
        var parsed = ImdsQuery.TryParse(context.Request.QueryString.Value, out var query, out var queryError);
        var validQuery = parsed ? query : null;
        var route = Normalize(path);
        var identityEndpoint = route.StartsWith(IdentityRoot, StringComparison.Ordinal);
        if (route == TokenPath)
        {
            _state.Counters.TokenRequestArrived();
        }

        var lease = default(Limits.IdentityLimiter.Lease);
        if (identityEndpoint && !_state.Limiter.TryAcquire(out lease))
        {
            _state.Counters.RequestThrottled();
            await ImdsResponses.WriteAsync(
                context, _headers, 429, ImdsResponses.IdentityError("too_many_requests", "Too many requests")).ConfigureAwait(false);
            return;
        }

        using (lease)
        {
            if (_state.Faults.TakeMatch(path, validQuery) is { } rule)
            {
                _state.Counters.FaultApplied();
                record.Fault = rule.Describe();
                if (await _faults.ApplyAsync(context, rule, identityEndpoint).ConfigureAwait(false))
                {
                    return;
                }
            }

            await RouteAsync(context, route, validQuery, parsed ? null : queryError).ConfigureAwait(false);
        }
    }

    private Task RouteAsync(HttpContext context, string route, ImdsQuery? query, string? queryError)
    {
        var known = route is TokenPath or "/metadata/identity/info" or "/metadata/versions" || OtherCategories.Serves(route)
            || route == "/metadata/instance" || route.StartsWith("/metadata/instance/", StringComparison.Ordinal);
        if (!known)
        {
            return ImdsResponses.WriteAsync(context, _headers, 404, ImdsResponses.NotFound);
        }

        if (!HttpMethods.IsGet(context.Request.Method))
        {
            context.Response.Headers.Allow = "GET";
            return ImdsResponses.WriteAsync(context, _headers, 405, ImdsResponses.PlainError("Method not allowed"));
        }

        return route switch
        {
            TokenPath => _token.HandleAsync(context, query, queryError),
            "/metadata/identity/info" => _identityInfo.HandleAsync(context, query, queryError),
            "/metadata/versions" => _versions.HandleAsync(context),
            _ when OtherCategories.Serves(route) => _otherCategories.HandleAsync(context, route, query),
            _ => _instance.HandleAsync(context, route, query),
        };
    }

    /// <summary>IMDS matches paths case-insensitively and Node's client appends a trailing slash.</summary>
    private static string Normalize(string path)
    {
        var trimmed = path.Length > 1 ? path.TrimEnd('/') : path;
        return trimmed.ToLowerInvariant();
    }
}
