using MsiProxy.Docker;
using MsiProxy.Kubernetes;
using MsiProxy.Routing;
using MsiProxy.ServiceDefaults;
using MsiProxy.Telemetry;

namespace MsiProxy.Hosting;

/// <summary>The host's composition: the service defaults with MsiProxy's names, the pipeline, then the discoveries.</summary>
internal static class MsiProxyServiceExtensions
{
    /// <summary>Serilog, OpenTelemetry (MsiProxy's and YARP's spans, MsiProxy's and Polly's meters), Prometheus, health checks.</summary>
    public static WebApplicationBuilder AddMsiProxyTelemetry(this WebApplicationBuilder builder) => builder.AddServiceDefaults(new ServiceTelemetry(
        ServiceName: "msiproxy",
        Sources: [MsiProxyTelemetry.Name, "Yarp.ReverseProxy"],
        Meters: [MsiProxyTelemetry.Name, "Polly"],
        IsTraced: context => !context.IsManagementConnection(), // scrapes and probes are not traced
        AuditCategory: MsiProxyTelemetry.AuditCategory));

    /// <summary>The pipeline (listeners, clients, cache, upstreams, YARP), then Kubernetes and Docker discovery when configured.</summary>
    public static WebApplicationBuilder AddMsiProxy(this WebApplicationBuilder builder) => builder
        .AddMsiProxyPipeline()
        .AddKubernetesDiscovery() // only when MsiProxy:Kubernetes is enabled
        .AddDockerMonitor();      // only when MsiProxy:Docker:Endpoint is set
}
