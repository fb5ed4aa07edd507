// MsiProxy: app containers call http://169.254.169.254 as usual; the proxy checks who is calling and which identity
// it may use, serves tokens from its cache and forwards the rest to IMDS (or an msiserviceclient) — see README.md.
using MsiProxy.Docker;
using MsiProxy.Docker.Wiring;
using MsiProxy.Hosting;
using MsiProxy.Interception.Kubernetes;

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

if (args.Contains("--demo", StringComparer.OrdinalIgnoreCase))
{
    // The emulator is not in the product (nor in its image): the demo is a program of its own.
    await Console.Error.WriteLineAsync("MsiProxy has no --demo: the demo (the proxy with the IMDS emulator embedded as its upstream) is its own program:"
        + Environment.NewLine + "  dotnet run --project src/MsiProxy.Demo");
    return 2;
}

return await MsiProxyHost.RunAsync(args); // Serilog + OpenTelemetry, then listeners, clients, cache, upstreams, YARP; exit 2 on bad configuration
