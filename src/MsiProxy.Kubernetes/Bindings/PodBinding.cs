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
    /// <summary>What the pods must show beyond their address (docs/proof-of-caller.md).</summary>
    public ProofPolicy Proof { get; init; } = ProofPolicy.Address;

    /// <summary>Where the pods' identity header is, in <see cref="Namespace"/>; set exactly when <see cref="Proof"/> needs it.</summary>
    public SecretKeyReference? IdentityHeaderSecret { get; init; }

    public bool Matches(PodInfo pod) =>
        string.Equals(pod.Namespace, Namespace, StringComparison.Ordinal)
        && string.Equals(pod.ServiceAccount, ServiceAccount, StringComparison.Ordinal)
        && MatchLabels.All(l => pod.Labels.TryGetValue(l.Key, out var value) && string.Equals(value, l.Value, StringComparison.Ordinal));
}

/// <summary>A key of a Secret in the binding's own namespace (a binding cannot name another namespace's Secret).</summary>
internal sealed record SecretKeyReference(string Name, string Key);

/// <summary>A key of a Secret, with its namespace: what the proxy reads.</summary>
internal sealed record SecretReference(string Namespace, string Name, string Key)
{
    /// <summary>Names only, for logs: never anything read from the Secret.</summary>
    public override string ToString() => $"{Namespace}/{Name} key {Key}";
}

/// <summary>What a pod is granted: its identities, and how it must prove it is the caller.</summary>
internal sealed record PodGrant(IReadOnlyList<IdentityBinding> Identities, ProofPolicy Proof, SecretReference? IdentityHeaderSecret);

/// <summary>The parsed bindings file: every binding that matches a pod contributes its identities, in file order.</summary>
internal sealed class BindingSet
{
    public static readonly BindingSet Empty = new([]);

    public BindingSet(IReadOnlyList<PodBinding> bindings) => Bindings = bindings;

    public IReadOnlyList<PodBinding> Bindings { get; }

    /// <summary>The identities <paramref name="pod"/> may use; empty means the pod is not a client at all.</summary>
    public IReadOnlyList<IdentityBinding> IdentitiesFor(PodInfo pod) =>
        [.. Bindings.Where(b => b.Matches(pod)).SelectMany(b => b.Identities).Distinct()];

    /// <summary>
    /// What <paramref name="pod"/> is granted, or null when no binding matches it or the bindings that match disagree on
    /// its proof (then <paramref name="problem"/> says so). A pod has one proof for all its identities, and taking
    /// either binding's would serve one binding's identities under the other's weaker proof, so a pod they disagree on
    /// gets nothing.
    /// </summary>
    public PodGrant? GrantFor(PodInfo pod, out string problem)
    {
        problem = "no binding";
        var matching = Bindings.Where(b => b.Matches(pod)).ToList();
        if (matching.Count == 0)
        {
            return null;
        }

        var first = matching[0];
        if (matching.Any(b => b.Proof != first.Proof || b.IdentityHeaderSecret != first.IdentityHeaderSecret))
        {
            problem = $"the {matching.Count} bindings that match it disagree on proof or identityHeaderSecret";
            return null;
        }

        var secret = first.IdentityHeaderSecret is { } s ? new SecretReference(pod.Namespace, s.Name, s.Key) : null;
        return new PodGrant([.. matching.SelectMany(b => b.Identities).Distinct()], first.Proof, secret);
    }
}
