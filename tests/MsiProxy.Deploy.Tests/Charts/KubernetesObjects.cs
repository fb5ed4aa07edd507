using k8s;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// Rendered objects read into the Kubernetes API types of the official C# client (KubernetesClient, generated from the
/// API's OpenAPI document) in strict mode: an unknown or misspelt field, or a value that does not fit the field, fails.
/// That is the offline stand-in for <c>kubectl apply --validate=strict</c>, because kubectl needs an API server for its
/// OpenAPI document even with <c>--dry-run=client</c> (tried: "failed to download openapi"). The Prometheus Operator's
/// kinds have no such types; <see cref="CustomKinds"/> lists the ones that are passed over.
/// </summary>
internal static class KubernetesObjects
{
    public static readonly IReadOnlySet<string> CustomKinds = new HashSet<string>(StringComparer.Ordinal)
    {
        "monitoring.coreos.com/v1/ServiceMonitor",
        "monitoring.coreos.com/v1/PodMonitor",
    };

    /// <summary>Reads one object's YAML strictly; throws naming the field that does not fit.</summary>
    public static IKubernetesObject Read(string yaml) =>
        (IKubernetesObject)Assert.Single(KubernetesYaml.LoadAllFromString(yaml, strict: true));
}
