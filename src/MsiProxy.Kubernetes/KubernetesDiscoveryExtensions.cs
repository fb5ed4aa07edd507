using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
using MsiProxy.Kubernetes.Api;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;
using MsiProxy.Kubernetes.Secrets;

namespace MsiProxy.Kubernetes;

public static class KubernetesDiscoveryExtensions
{
    /// <summary>
    /// Node-local pod discovery when <c>MsiProxy:Kubernetes:Enabled</c>: this node's pods from the API server, identities from the
    /// admin's bindings file (and the identity header Secrets its bindings name), and (with <c>Dnat:Enabled</c>) the iptables rules that send pods' IMDS traffic here and nowhere else.
    /// </summary>
    public static WebApplicationBuilder AddKubernetesDiscovery(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<IValidateOptions<MsiProxyOptions>, KubernetesOptionsValidator>();
        services.PostConfigure<MsiProxyOptions>(o =>
            o.Kubernetes.NodeName = string.IsNullOrWhiteSpace(o.Kubernetes.NodeName) ? Environment.GetEnvironmentVariable("NODE_NAME") : o.Kubernetes.NodeName);

        var section = builder.Configuration.GetSection($"{MsiProxyOptions.SectionName}:Kubernetes");
        // Not GetValue<bool>: it throws for "yes" here, outside start-up's handling of configuration errors. A value that
        // is not a boolean leaves discovery off, and binding MsiProxyOptions then refuses it (exit 2, naming key and value).
        if (!IsTrue(section["Enabled"]))
        {
            return builder;
        }

        AddPodDiscovery(services, section);
        return builder;
    }

    private static void AddPodDiscovery(IServiceCollection services, IConfigurationSection section)
    {
        services.AddSingleton(sp => new KubernetesApi(Connection(sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes)));
        services.TryAddSingleton<IPodSource>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes;
            return new KubernetesPodSource(sp.GetRequiredService<KubernetesApi>(), options.NodeName!, options.WatchTimeout);
        });
        services.TryAddSingleton<ISecretSource>(sp => new KubernetesSecretSource(sp.GetRequiredService<KubernetesApi>()));
        services.AddSingleton<IdentityHeaderSecrets>();
        services.AddSingleton<PodRegistrations>();
        services.AddHostedService<BindingsWatcher>();
        services.AddHostedService<PodWatcher>();
        services.AddHostedService<IdentityHeaderSecretRefresher>();

        if (IsTrue(section["Dnat:Enabled"]))
        {
            services.TryAddSingleton<ICommandRunner, ProcessCommandRunner>();
            services.AddSingleton(sp => new PodRules(sp.GetRequiredService<ICommandRunner>(),
                sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes.Dnat));
            services.AddHostedService<PodRulesService>();
        }
    }

    private static KubernetesConnection Connection(KubernetesOptions options) =>
        string.IsNullOrEmpty(options.ApiServer)
            ? KubernetesConnection.InCluster(Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_HOST"), Environment.GetEnvironmentVariable("KUBERNETES_SERVICE_PORT"))
            : KubernetesConnection.Direct(new Uri(options.ApiServer));

    private static bool IsTrue(string? value) => bool.TryParse(value, out var enabled) && enabled;
}
