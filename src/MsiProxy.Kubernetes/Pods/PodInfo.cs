using System.Net;
using System.Net.Sockets;
using MsiProxy.Kubernetes.Api;

namespace MsiProxy.Kubernetes.Pods;

/// <summary>What the proxy needs to know about a pod; everything else in the pod object is ignored.</summary>
internal sealed record PodInfo
{
    public required string Uid { get; init; }
    public required string Namespace { get; init; }
    public required string Name { get; init; }
    public required string ServiceAccount { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The address the pod calls IMDS from (its IPv4 address on dual-stack), or null before it has one.</summary>
    public IPAddress? Address { get; init; }

    public string? Phase { get; init; }
    public bool HostNetwork { get; init; }

    /// <summary><c>namespace/name</c>: the registration name shown by the admin API and in logs.</summary>
    public string QualifiedName => $"{Namespace}/{Name}";

    public bool IsRunning => Phase == "Running";
    public bool IsFinished => Phase is "Succeeded" or "Failed";

    public static PodInfo From(ApiPod pod)
    {
        var metadata = pod.Metadata ?? throw new FormatException("a pod without metadata");
        return new PodInfo
        {
            Uid = metadata.Uid ?? throw new FormatException($"pod {metadata.Namespace}/{metadata.Name} has no uid"),
            Namespace = metadata.Namespace ?? "default",
            Name = metadata.Name ?? metadata.Uid,
            // The API server defaults an empty serviceAccountName to "default"; do the same for objects that skip it.
            ServiceAccount = string.IsNullOrEmpty(pod.Spec?.ServiceAccountName) ? "default" : pod.Spec.ServiceAccountName,
            Labels = metadata.Labels is { } labels ? new Dictionary<string, string>(labels, StringComparer.Ordinal) : new Dictionary<string, string>(),
            Address = PickAddress(pod.Status),
            Phase = pod.Status?.Phase,
            HostNetwork = pod.Spec?.HostNetwork == true,
        };
    }

    /// <summary>IMDS is IPv4-only, so on a dual-stack pod the IPv4 address is the one its requests come from.</summary>
    private static IPAddress? PickAddress(ApiPodStatus? status)
    {
        var candidates = new List<string>();
        if (status?.PodIPs is { } ips)
        {
            candidates.AddRange(ips.Select(ip => ip.Ip).OfType<string>().Where(ip => ip.Length > 0));
        }

        if (!string.IsNullOrEmpty(status?.PodIP))
        {
            candidates.Add(status.PodIP);
        }

        var parsed = candidates.Select(c => IPAddress.TryParse(c, out var a) ? a : null).OfType<IPAddress>().ToList();
        return parsed.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? parsed.FirstOrDefault();
    }
}
