using System.Runtime.CompilerServices;
using k8s;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
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

    // Apart from AddKubernetesDiscovery, and never inlined into it: the JIT resolves every type a method's body names
    // when it compiles that method, so registering IKubernetes in the caller loaded KubernetesClient.dll (~2 MB mapped,
    // its types and statics) into every proxy, discovery on or off. tests/MsiProxy.Tests/Hosting/ModeFootprintTests holds this.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddPodDiscovery(IServiceCollection services, IConfigurationSection section)
    {
        services.AddSingleton<IKubernetes>(sp => new k8s.Kubernetes(ClientConfiguration(sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes)));
        services.TryAddSingleton<IPodSource>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes;
            return new KubernetesPodSource(sp.GetRequiredService<IKubernetes>(), options.NodeName!, options.WatchTimeout);
        });
        services.TryAddSingleton<ISecretSource>(sp => new KubernetesSecretSource(sp.GetRequiredService<IKubernetes>()));
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

    private static KubernetesClientConfiguration ClientConfiguration(KubernetesOptions options)
    {
        if (!string.IsNullOrEmpty(options.ApiServer))
        {
            return new KubernetesClientConfiguration { Host = options.ApiServer };
        }

        if (!KubernetesClientConfiguration.IsInCluster())
        {
            throw new ConfigurationException(
                "MsiProxy:Kubernetes:Enabled is true but there is no in-cluster configuration (service account token and "
                + "KUBERNETES_SERVICE_HOST); run the proxy in a pod or set MsiProxy:Kubernetes:ApiServer");
        }

        return KubernetesClientConfiguration.InClusterConfig();
    }

    private static bool IsTrue(string? value) => bool.TryParse(value, out var enabled) && enabled;
}
