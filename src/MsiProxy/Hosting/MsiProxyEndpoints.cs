using MsiProxy.Docker;

namespace MsiProxy.Hosting;

internal static class MsiProxyEndpoints
{
    /// <summary>
    /// The client listener's routing table and the management listener's endpoints (see
    /// <see cref="PipelineExtensions.MapMsiProxyPipeline"/>), plus the container monitor's view under /admin/wiring.
    /// </summary>
    public static WebApplication MapMsiProxy(this WebApplication app)
    {
        app.MapMsiProxyPipeline().MapWiringState();
        return app;
    }
}
