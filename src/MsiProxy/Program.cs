// MsiProxy: app containers call http://169.254.169.254 as usual; the proxy checks who is calling and which identity
// it may use, serves tokens from its cache and forwards the rest to IMDS (or an msiserviceclient) — see README.md.
using MsiProxy.Docker;
using MsiProxy.Hosting;
using MsiProxy.Interception.Kubernetes;
using MsiProxy.Interception.Linux;
using MsiProxy.Telemetry;

switch (args)
{
    case ["monitor", .. var monitorArgs]:
        return await DockerMonitorExtensions.RunStandaloneMonitorAsync(monitorArgs); // the monitor alone, driving a proxy's admin API
    case ["install-host-rules", .. var installArgs]:
        return await HostRulesCommand.InstallAsync(installArgs, Console.Out);         // Linux host rules before the proxy runs (boot)
    case ["uninstall-host-rules", .. var uninstallArgs]:
        return await HostRulesCommand.UninstallAsync(uninstallArgs, Console.Out);     // the only way the host rules go
    case ["uninstall-pod-rules", .. var podArgs]:
        return await PodRulesCommand.UninstallAsync(podArgs, Console.Out);            // the only way the Kubernetes pod rules go
}

var builder = WebApplication.CreateBuilder(args);
await using var demo = await DemoMode.StartIfRequestedAsync(builder, args); // --demo: embedded IMDS emulator, loopback only
builder.AddMsiProxyTelemetry();                                               // Serilog, OpenTelemetry, Prometheus
builder.AddMsiProxy();                                                        // listeners, clients, cache, upstreams, YARP

// Build → MapMsiProxy (the routing table, in request order) → run; a configuration error exits with code 2.
return await builder.RunMsiProxyAsync(app => demo?.PrintInstructionsWhenStarted(app));
