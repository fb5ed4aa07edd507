using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.Kubernetes;

/// <summary>
/// Keeps the registry in step with this node's pods and the admin's bindings. A pod is a client only while it has an address,
/// is not on the host network, has not finished, and a binding names it; it is Ready once Running. Registrations are keyed by
/// pod uid, so a late event for a dead pod can never touch the pod that now has its name or its IP.
/// </summary>
internal sealed class PodRegistrations(ClientRegistry registry, ILogger<PodRegistrations> logger)
{
    private readonly Lock _lock = new();
    private Dictionary<string, PodInfo> _pods = new(StringComparer.Ordinal);
    private BindingSet _bindings = BindingSet.Empty;

    public BindingSet Bindings => _bindings;

    /// <summary>A full list: pods that are gone lose their registrations, the rest are (re)evaluated.</summary>
    public void Replace(IEnumerable<PodInfo> pods)
    {
        lock (_lock)
        {
            _pods = pods.ToDictionary(p => p.Uid, StringComparer.Ordinal);
            var removed = registry.RemoveWhere(r => r.Source == RegistrationSources.Kubernetes && (r.WorkloadId is null || !_pods.ContainsKey(r.WorkloadId)));
            if (removed > 0)
            {
                logger.LogInformation("Relist removed {Count} registrations of pods that no longer exist on this node", removed);
            }

            foreach (var pod in _pods.Values)
            {
                Apply(pod);
            }
        }
    }

    public void Upsert(PodInfo pod)
    {
        lock (_lock)
        {
            _pods[pod.Uid] = pod;
            Apply(pod);
        }
    }

    public void Delete(PodInfo pod)
    {
        lock (_lock)
        {
            _pods.Remove(pod.Uid);
            Unregister(pod.Uid, pod.QualifiedName, "deleted");
        }
    }

    /// <summary>New bindings from the admin: every known pod is re-evaluated at once.</summary>
    public void SetBindings(BindingSet bindings)
    {
        lock (_lock)
        {
            _bindings = bindings;
            foreach (var pod in _pods.Values)
            {
                Apply(pod);
            }
        }
    }

    private void Apply(PodInfo pod)
    {
        if (pod.HostNetwork)
        {
            // Its "pod IP" is the node's IP, shared with every other host-network pod and the node itself.
            Unregister(pod.Uid, pod.QualifiedName, "on the host network");
            return;
        }

        if (pod.Address is { } address && !pod.IsFinished)
        {
            // This pod owns the address now: whoever held it before is gone, even if its DELETED event has not arrived yet.
            var range = AddressRange.ForAddress(address);
            var stale = registry.RemoveWhere(r => r.Source == RegistrationSources.Kubernetes && SameAddress(r.Address, range) && r.WorkloadId != pod.Uid);
            if (stale > 0)
            {
                logger.LogInformation("Pod {Pod} ({Uid}) now has {Address}; removed the registration of its previous holder",
                    pod.QualifiedName, pod.Uid, address);
            }
        }

        var wanted = Desired(pod, out var reason);
        if (wanted is null)
        {
            Unregister(pod.Uid, pod.QualifiedName, reason);
            return;
        }

        var existing = registry.All.FirstOrDefault(r => r.Source == RegistrationSources.Kubernetes && r.WorkloadId == pod.Uid);
        if (existing is not null && existing.Name == wanted.Name && SameAddress(existing.Address, wanted.Address) && existing.Ready == wanted.Ready
            && existing.Identities.SequenceEqual(wanted.Identities))
        {
            return;
        }

        registry.Register(wanted);
        logger.LogInformation("Registered pod {Pod} ({Uid}) at {Address} with {IdentityCount} identities, ready: {Ready}",
            wanted.Name, pod.Uid, pod.Address, wanted.Identities.Count, wanted.Ready);
    }

    private ClientRegistration? Desired(PodInfo pod, out string reason)
    {
        reason = "";
        if (pod.Address is not { } address)
        {
            reason = "has no IP";
            return null;
        }

        if (pod.IsFinished)
        {
            reason = $"phase {pod.Phase}";
            return null;
        }

        var identities = _bindings.IdentitiesFor(pod);
        if (identities.Count == 0)
        {
            reason = "no binding";
            return null;
        }

        return new ClientRegistration
        {
            Name = pod.QualifiedName,
            Address = AddressRange.ForAddress(address),
            Identities = identities,
            Source = RegistrationSources.Kubernetes,
            WorkloadId = pod.Uid,
            Ready = pod.IsRunning,
        };
    }

    // AddressRange's generated record equality compares its byte array by reference, so compare the values.
    private static bool SameAddress(AddressRange a, AddressRange b) => a.PrefixLength == b.PrefixLength && a.Network.Equals(b.Network);

    private void Unregister(string uid, string name, string reason)
    {
        if (registry.RemoveWhere(r => r.Source == RegistrationSources.Kubernetes && r.WorkloadId == uid) > 0)
        {
            logger.LogInformation("Deregistered pod {Pod} ({Uid}): {Reason}", name, uid, reason);
        }
    }
}
