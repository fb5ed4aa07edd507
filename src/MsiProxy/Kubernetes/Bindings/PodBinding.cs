using MsiProxy.Clients;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.Kubernetes.Bindings;

/// <summary>
/// One admin-owned rule: pods of <see cref="ServiceAccount"/> in <see cref="Namespace"/> (and, when given, carrying every label in
/// <see cref="MatchLabels"/>) may use <see cref="Identities"/>. Labels can only narrow a binding; nothing on a pod grants anything.
/// </summary>
internal sealed record PodBinding(
    string Namespace,
    string ServiceAccount,
    IReadOnlyDictionary<string, string> MatchLabels,
    IReadOnlyList<IdentityBinding> Identities)
{
    public bool Matches(PodInfo pod) =>
        string.Equals(pod.Namespace, Namespace, StringComparison.Ordinal)
        && string.Equals(pod.ServiceAccount, ServiceAccount, StringComparison.Ordinal)
        && MatchLabels.All(l => pod.Labels.TryGetValue(l.Key, out var value) && string.Equals(value, l.Value, StringComparison.Ordinal));
}

/// <summary>The parsed bindings file: every binding that matches a pod contributes its identities, in file order.</summary>
internal sealed class BindingSet
{
    public static readonly BindingSet Empty = new([]);

    public BindingSet(IReadOnlyList<PodBinding> bindings) => Bindings = bindings;

    public IReadOnlyList<PodBinding> Bindings { get; }

    /// <summary>The identities <paramref name="pod"/> may use; empty means the pod is not a client at all.</summary>
    public IReadOnlyList<IdentityBinding> IdentitiesFor(PodInfo pod) =>
        [.. Bindings.Where(b => b.Matches(pod)).SelectMany(b => b.Identities).Distinct()];
}
