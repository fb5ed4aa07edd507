// MsiProxy: app containers call http://169.254.169.254 as usual; the proxy checks who is calling and which identity
// it may use, serves tokens from its cache and forwards the rest to IMDS (or an msiserviceclient) — see README.md.
using MsiProxy.Docker;
using MsiProxy.Hosting;
using MsiProxy.Telemetry;

if (args is ["monitor", .. var monitorArgs])
{
    return await DockerMonitorExtensions.RunStandaloneMonitorAsync(monitorArgs); // the monitor alone, driving a proxy's admin API
}

var builder = WebApplication.CreateBuilder(args);
await using var demo = await DemoMode.StartIfRequestedAsync(builder, args); // --demo: embedded IMDS emulator, loopback only
builder.AddMsiProxyTelemetry();                                               // Serilog, OpenTelemetry, Prometheus
builder.AddMsiProxy();                                                        // listeners, clients, cache, upstreams, YARP

var app = builder.Build();
app.MapMsiProxy();                                                            // the routing table, in request order
demo?.PrintInstructionsWhenStarted(app);
return await app.RunMsiProxyAsync();
