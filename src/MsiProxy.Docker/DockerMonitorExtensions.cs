using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Docker.Wiring;
using MsiProxy.Interception;
using MsiProxy.Interception.Linux;
using MsiProxy.ServiceDefaults;
using MsiProxy.Telemetry;

namespace MsiProxy.Docker;

public static class DockerMonitorExtensions
{
    /// <summary>The container monitor inside the proxy, when <c>MsiProxy:Docker:Endpoint</c> is set.</summary>
    public static WebApplicationBuilder AddDockerMonitor(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration[DockerMonitorOptions.SectionName + ":Endpoint"]))
        {
            return builder;
        }

        builder.Services.AddMonitorCore(builder.Configuration);
        builder.Services.AddSingleton<IRegistrationSink, InProcessRegistrationSink>();
        builder.Services.AddHealthChecks().AddCheck<MonitorReadiness>(MonitorReadiness.Name, tags: [ServiceDefaultsExtensions.ReadyTag]);

        // The request gate holds an unknown caller briefly while the monitor looks for a container with its address.
        builder.Services.AddSingleton<ICallerDiscovery>(sp => sp.GetRequiredService<DockerCallerDiscovery>());
        return builder;
    }

    /// <summary>
    /// <c>MsiProxy monitor</c>: the monitor alone, for hosts where the proxy cannot reach the engine. It drives the proxy
    /// through its admin API (MsiProxy:Monitor:AdminUrl + ApiKey/ApiKeyFile) and does the wiring (or the host rules) itself.
    /// </summary>
    public static async Task<int> RunStandaloneMonitorAsync(string[] args)
    {
        var builder = Host.CreateApplicationBuilder(args);
        if (string.IsNullOrWhiteSpace(builder.Configuration[DockerMonitorOptions.SectionName + ":Endpoint"]))
        {
            builder.Configuration[DockerMonitorOptions.SectionName + ":Endpoint"] = OperatingSystem.IsWindows()
                ? "npipe://./pipe/docker_engine" : "unix:///var/run/docker.sock";
        }

        builder.Services.AddMetrics();
        builder.Services.AddSingleton<MsiProxyTelemetry>();
        builder.Services.AddOptions<Configuration.MsiProxyOptions>()
            .BindChecked(builder.Configuration.GetSection(Configuration.MsiProxyOptions.SectionName), (s, o) => s.Bind(o));
        builder.Services.AddOptions<StandaloneMonitorOptions>().BindChecked(builder.Configuration.GetSection(StandaloneMonitorOptions.SectionName), (s, o) => s.Bind(o));
        builder.Services.AddHttpClient(AdminApiRegistrationSink.HttpClientName);
        builder.Services.AddSingleton<IRegistrationSink, AdminApiRegistrationSink>();
        builder.Services.AddMonitorCore(builder.Configuration);
        try
        {
            using var host = builder.Build();
            // Configuration errors now, not in the loop, nor as the host's "failed to start" log with a stack trace.
            _ = host.Services.GetRequiredService<IOptions<DockerMonitorOptions>>().Value;
            _ = host.Services.GetRequiredService<IRegistrationSink>();
            await host.RunAsync().ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is OptionsValidationException or Configuration.ConfigurationException)
        {
            var messages = ex is OptionsValidationException validation ? validation.Failures : [ex.Message];
            await Console.Error.WriteLineAsync("MsiProxy monitor cannot start, the configuration is invalid:\n  " + string.Join("\n  ", messages))
                .ConfigureAwait(false);
            return 2;
        }
    }

    private static IServiceCollection AddMonitorCore(this IServiceCollection services, ConfigurationManager configuration)
    {
        services.AddOptions<DockerMonitorOptions>().BindChecked(configuration.GetSection(DockerMonitorOptions.SectionName), (s, o) => s.Bind(o)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<DockerMonitorOptions>, DockerMonitorOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<MonitorState>();
        services.AddSingleton<IContainerEngine>(sp => new DockerEngine(sp.GetRequiredService<IOptions<DockerMonitorOptions>>().Value.Endpoint!));
        services.TryAddSingleton<ICommandRunner, ProcessCommandRunner>();
        services.AddSingleton(sp => new HostRules(sp.GetRequiredService<ICommandRunner>(), sp.GetRequiredService<IOptions<DockerMonitorOptions>>().Value.HostRules));
        services.AddSingleton<HostRulesWiring>();
        services.AddSingleton<WindowsScriptWiring>();
        services.AddSingleton<IContainerWiring>(sp => sp.GetRequiredService<IOptions<DockerMonitorOptions>>().Value.Wiring switch
        {
            WiringMode.Linux => sp.GetRequiredService<HostRulesWiring>(),
            WiringMode.Windows => sp.GetRequiredService<WindowsScriptWiring>(),
            WiringMode.None => new NoWiring(),
            _ => ActivatorUtilities.CreateInstance<AutoWiring>(sp),
        });
        services.AddSingleton<ContainerReconciler>();
        services.AddSingleton<ReconcileTrigger>();
        services.AddSingleton<DockerCallerDiscovery>();
        services.AddHostedService<ContainerMonitor>();
        return services;
    }
}
