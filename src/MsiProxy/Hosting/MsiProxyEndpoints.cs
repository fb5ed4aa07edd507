using MsiProxy.Management;
using MsiProxy.Responses;

namespace MsiProxy.Hosting;

internal static class MsiProxyEndpoints
{
    /// <summary>
    /// The two listeners. A connection accepted on the client listener is answered by <see cref="ClientRequests"/> —
    /// nothing else, whatever its path or Host header: the routing table is there. The management listener serves
    /// /healthz, /readyz, /metrics and /admin/*, and none of them exists on the client port.
    /// </summary>
    public static WebApplication MapMsiProxy(this WebApplication app)
    {
        var client = app.Services.GetRequiredService<ClientRequests>();
        app.UseWhen(context => !context.IsManagementConnection(), listener => listener.Run(client.HandleAsync));
        app.UseRouting();
        app.MapManagementEndpoints();
        // YARP keeps the upstream set (ordered destinations, active probes, passive health); mapping it with no routes is
        // what starts that. It forwards nothing: docs/architecture.md says why.
        app.MapReverseProxy();
        return app;
    }
}
