using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Telemetry;

namespace MsiProxy.Requests;

/// <summary>
/// Every client request passes here before anything is read from the cache or sent upstream, in this order:
/// 1. who is calling — the TCP peer address, never a header; unknown → 403, registered but still being wired → 503;
/// 2. where to — the raw path normalised, then checked against the allow-list → 404;
/// 3. how — GET only → 405;
/// 4. the IMDS SSRF guard — <c>Metadata: true</c> → 400;
/// 5. the query — unique names, valid encoding → 400 (token requests are validated further by their endpoint).
/// </summary>
public sealed class ImdsRequestGate(RequestDelegate next, ClientRegistry clients, IOptionsMonitor<MsiProxyOptions> options,
    MsiProxyTelemetry telemetry, IServiceProvider? services = null)
{
    /// <summary>
    /// How long an unknown caller is held while the monitor looks for it. Finding a container takes one pass
    /// (milliseconds); the bound only limits how long a caller nobody holds waits for its 403.
    /// </summary>
    private static readonly TimeSpan DiscoveryBound = TimeSpan.FromSeconds(2);

    private readonly ICallerDiscovery? _discovery = services?.GetService<ICallerDiscovery>();

    public Task InvokeAsync(HttpContext context)
    {
        var caller = context.Connection.RemoteIpAddress is { } remote ? AddressRange.Normalise(remote) : System.Net.IPAddress.None;
        var request = new ProxyRequest { Caller = caller };
        context.Features.Set(request);

        var client = context.Connection.RemoteIpAddress is null ? null : clients.Find(caller);
        if (client is null && _discovery is not null && context.Connection.RemoteIpAddress is not null)
        {
            return DiscoverThenCheckAsync(context, request, caller);
        }

        return Check(context, request, client);
    }

    /// <summary>A container that has just started may call before the monitor registered it: let it look (bounded), then look again.</summary>
    private async Task DiscoverThenCheckAsync(HttpContext context, ProxyRequest request, System.Net.IPAddress caller)
    {
        using (var bound = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            bound.CancelAfter(DiscoveryBound);
            try
            {
                await _discovery!.DiscoverAsync(caller, bound.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                // Not found within the bound: answered as an unknown caller.
            }
        }

        await Check(context, request, clients.Find(caller)).ConfigureAwait(false);
    }

    private Task Check(HttpContext context, ProxyRequest request, ClientRegistration? client)
    {
        var caller = request.Caller;
        if (client is null)
        {
            return Deny(context, request, "unregistered", StatusCodes.Status403Forbidden, "forbidden",
                $"Caller {caller} is not a registered client of this proxy");
        }

        request.Client = client;
        if (!client.Ready)
        {
            return Deny(context, request, "pending", StatusCodes.Status503ServiceUnavailable, "service_unavailable",
                $"Client {client.Name} is being set up; retry shortly", TimeSpan.FromSeconds(1));
        }

        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "/";
        var queryStart = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = queryStart < 0 ? rawTarget.AsSpan() : rawTarget.AsSpan(0, queryStart);
        if (!PathNormaliser.TryNormalise(rawPath, out var path, out _) || !IsAllowed(path))
        {
            return Deny(context, request, "path", StatusCodes.Status404NotFound, "not_found", "Not found");
        }

        request.Path = path;
        request.Route = ImdsPaths.IsToken(path) ? "token" : ImdsPaths.IsAtOrBelow(path, ImdsPaths.Instance) ? "instance" : "other";
        if (!HttpMethods.IsGet(context.Request.Method))
        {
            context.Response.Headers.Allow = "GET";
            return Deny(context, request, "method", StatusCodes.Status405MethodNotAllowed, "method_not_allowed",
                $"Method {context.Request.Method} is not allowed");
        }

        if (options.CurrentValue.RequireMetadataHeader && !IsExactlyTrue(context.Request.Headers["Metadata"]))
        {
            return Deny(context, request, "metadata_header", StatusCodes.Status400BadRequest, "invalid_request",
                "Required metadata header not specified");
        }

        var rawQuery = queryStart < 0 ? [] : rawTarget.AsSpan(queryStart + 1);
        if (!QueryParameters.TryParse(rawQuery, out var query, out var queryError))
        {
            return Deny(context, request, "bad_request", StatusCodes.Status400BadRequest, "invalid_request", queryError!);
        }

        request.Query = query;

        // What is forwarded is exactly what was checked: the normalised path.
        context.Request.Path = path;
        return next(context);
    }

    /// <summary>IMDS wants the value "true", in lower case, once.</summary>
    private static bool IsExactlyTrue(Microsoft.Extensions.Primitives.StringValues values) => values.Count == 1 && values[0] == "true";

    private bool IsAllowed(string path)
    {
        // Below the token path nothing is served: such a request would be forwarded as-is, skipping the identity
        // binding and the cache that only the exact token path gets — whatever prefix the allow-list holds.
        if (ImdsPaths.IsAtOrBelow(path, ImdsPaths.Token) && !ImdsPaths.IsToken(path))
        {
            return false;
        }

        foreach (var prefix in options.CurrentValue.EffectiveAllowedPaths)
        {
            if (ImdsPaths.IsAtOrBelow(path, prefix))
            {
                return true;
            }
        }

        return false;
    }

    private Task Deny(HttpContext context, ProxyRequest request, string reason, int status, string error, string description,
        TimeSpan? retryAfter = null)
    {
        request.Outcome = "denied";
        request.DenialReason = reason;
        telemetry.Denials.Add(1, new KeyValuePair<string, object?>("reason", reason));
        return ImdsErrors.WriteAsync(context, status, error, description, retryAfter);
    }
}
