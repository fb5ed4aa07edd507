using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;
using MsiProxy.Kubernetes.Secrets;
using k8s;

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
        if (!section.GetValue<bool>("Enabled"))
        {
            return builder;
        }

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

        if (section.GetValue<bool>("Dnat:Enabled"))
        {
            services.TryAddSingleton<ICommandRunner, ProcessCommandRunner>();
            services.AddSingleton(sp => new PodRules(sp.GetRequiredService<ICommandRunner>(),
                sp.GetRequiredService<IOptions<MsiProxyOptions>>().Value.Kubernetes.Dnat));
            services.AddHostedService<PodRulesService>();
        }

        return builder;
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
}
