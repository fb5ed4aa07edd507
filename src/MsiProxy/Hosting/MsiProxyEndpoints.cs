using MsiProxy.Forwarding;
using MsiProxy.Management;
using MsiProxy.Requests;
using MsiProxy.Telemetry;
using MsiProxy.Tokens;

namespace MsiProxy.Hosting;

public static class MsiProxyEndpoints
{
    /// <summary>
    /// The routing table, in the order a request meets it.
    /// Client listener:
    ///   1. RequestTelemetryMiddleware — one log line, metrics and error shaping for everything below;
    ///   2. ImdsRequestGate — caller (403/503), path normalisation + allow-list (404), method (405), Metadata (400), query (400);
    ///   3. GET /metadata/identity/oauth2/token — TokenEndpoint: identity binding (403) → cache → upstream;
    ///   4. every other allowed path — forwarded by YARP to the first available upstream.
    /// Management listener: /healthz, /readyz, /metrics, /admin/* — and an endpoint of one listener is a 404 on the other.
    /// </summary>
    public static WebApplication MapMsiProxy(this WebApplication app)
    {
        app.UseWhen(context => !context.IsManagementConnection(), client => client
            .UseMiddleware<RequestTelemetryMiddleware>()
            .UseMiddleware<ImdsRequestGate>());
        app.UseRouting();
        app.Use(KeepListenersApart);

        app.MapGet(ImdsPaths.Token, (HttpContext context, TokenEndpoint tokens) => tokens.HandleAsync(context));
        app.MapReverseProxy(proxy =>
        {
            proxy.Use(ForwardingErrors.InvokeAsync);
            proxy.UseLoadBalancing();
        });

        app.MapGroup("").WithMetadata(ManagementEndpoint.Instance).MapManagementEndpoints();
        return app;
    }

    private static Task KeepListenersApart(HttpContext context, Func<Task> next)
    {
        var managementEndpoint = context.GetEndpoint()?.Metadata.GetMetadata<ManagementEndpoint>() is not null;
        return managementEndpoint == context.IsManagementConnection() ? next() : ImdsErrors.NotFound(context);
    }
}

/// <summary>Endpoint metadata: served on the management listener only.</summary>
public sealed class ManagementEndpoint
{
    public static readonly ManagementEndpoint Instance = new();

    private ManagementEndpoint()
    {
    }
}
