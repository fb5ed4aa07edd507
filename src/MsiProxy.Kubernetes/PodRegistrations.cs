using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;
using MsiProxy.Kubernetes.Secrets;

namespace MsiProxy.Kubernetes;

/// <summary>
/// Keeps the registry in step with this node's pods and the admin's bindings. A pod is a client only while it has an address,
/// is not on the host network, has not finished, and a binding names it; it is Ready once Running. Registrations are keyed by
/// pod uid, so a late event for a dead pod can never touch the pod that now has its name or its IP.
/// A binding whose proof needs the identity header registers its pods only once the Secret it names has been read, with
/// the value's digest (never the value); while the Secret cannot be read its pods are not clients (fail closed).
/// </summary>
internal sealed class PodRegistrations(ClientRegistry registry, IdentityHeaderSecrets secrets, ILogger<PodRegistrations> logger)
{
    private readonly Lock _lock = new();
    private Dictionary<string, PodInfo> _pods = new(StringComparer.Ordinal);
    private BindingSet _bindings = BindingSet.Empty;

    // The last refusal logged per pod uid: a pod that matches a binding yet cannot be registered is logged once per reason,
    // not on every event for it.
    private readonly Dictionary<string, string> _refusals = new(StringComparer.Ordinal);

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

            foreach (var uid in _refusals.Keys.Where(uid => !_pods.ContainsKey(uid)).ToList())
            {
                _refusals.Remove(uid);
            }

            foreach (var pod in _pods.Values)
            {
                Apply(pod);
            }
        }

        // A relist is a resync: identity header Secrets are read again too, so a changed value cannot linger longer.
        secrets.RequestRead();
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
            _refusals.Remove(pod.Uid);
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

    /// <summary>An identity header Secret was read, changed or became unreadable: every known pod is re-evaluated.</summary>
    public void Reevaluate()
    {
        lock (_lock)
        {
            foreach (var pod in _pods.Values)
            {
                Apply(pod);
            }
        }
    }

    /// <summary>The identity header Secrets the bindings name for pods that could be clients now.</summary>
    public IReadOnlySet<SecretReference> IdentityHeaderSecrets()
    {
        lock (_lock)
        {
            return _pods.Values.Where(p => !p.HostNetwork && p.Address is not null && !p.IsFinished)
                .Select(p => _bindings.GrantFor(p, out _)?.IdentityHeaderSecret)
                .OfType<SecretReference>()
                .ToHashSet();
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

        var wanted = Desired(pod, out var reason, out var refusal);
        if (wanted is null)
        {
            if (!Unregister(pod.Uid, pod.QualifiedName, reason) && refusal && _refusals.GetValueOrDefault(pod.Uid) != reason)
            {
                logger.LogWarning("Pod {Pod} ({Uid}) matches a binding but is not registered: {Reason}", pod.QualifiedName, pod.Uid, reason);
            }

            _refusals[pod.Uid] = reason;
            return;
        }

        _refusals.Remove(pod.Uid);
        var existing = registry.All.FirstOrDefault(r => r.Source == RegistrationSources.Kubernetes && r.WorkloadId == pod.Uid);
        if (existing is not null && existing.Name == wanted.Name && SameAddress(existing.Address, wanted.Address) && existing.Ready == wanted.Ready
            && existing.Identities.SequenceEqual(wanted.Identities) && existing.Proof == wanted.Proof && Equals(existing.IdentityHeader, wanted.IdentityHeader))
        {
            return;
        }

        registry.Register(wanted);
        logger.LogInformation("Registered pod {Pod} ({Uid}) at {Address} with {IdentityCount} identities, proof {Proof}, ready: {Ready}",
            wanted.Name, pod.Uid, pod.Address, wanted.Identities.Count, wanted.Proof.Name(), wanted.Ready);
    }

    /// <param name="refusal">True when the pod matches a binding and still cannot be registered: worth a warning.</param>
    private ClientRegistration? Desired(PodInfo pod, out string reason, out bool refusal)
    {
        reason = "";
        refusal = false;
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

        if (_bindings.GrantFor(pod, out var problem) is not { } grant)
        {
            reason = problem;
            refusal = _bindings.Bindings.Any(b => b.Matches(pod));
            return null;
        }

        IdentityHeaderDigest? digest = null;
        if (grant.IdentityHeaderSecret is { } secret)
        {
            switch (secrets.Get(secret))
            {
                case null:
                    reason = $"waiting for its identity header from {secret}"; // the first read is under way: no warning
                    return null;
                case { Digest: null, Problem: var unreadable }:
                    reason = $"its identity header cannot be read: {unreadable}";
                    refusal = true;
                    return null;
                case { Digest: var read }:
                    digest = read;
                    break;
            }
        }

        // A secret-proof pod keeps its pod IP as its address: it is found by its secret, and then must call from there.
        return new ClientRegistration
        {
            Name = pod.QualifiedName,
            Address = AddressRange.ForAddress(address),
            Identities = grant.Identities,
            Source = RegistrationSources.Kubernetes,
            WorkloadId = pod.Uid,
            Ready = pod.IsRunning,
            Proof = grant.Proof,
            IdentityHeader = digest,
        };
    }

    // AddressRange's generated record equality compares its byte array by reference, so compare the values.
    private static bool SameAddress(AddressRange a, AddressRange b) => a.PrefixLength == b.PrefixLength && a.Network.Equals(b.Network);

    /// <summary>Returns true when the pod had a registration (and says why it lost it).</summary>
    private bool Unregister(string uid, string name, string reason)
    {
        if (registry.RemoveWhere(r => r.Source == RegistrationSources.Kubernetes && r.WorkloadId == uid) > 0)
        {
            logger.LogInformation("Deregistered pod {Pod} ({Uid}): {Reason}", name, uid, reason);
            return true;
        }

        return false;
    }
}
