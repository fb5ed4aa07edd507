namespace MsiProxy.Clients;

/// <summary>Where a registration came from (shown by the admin API and in logs; configuration reloads touch only their own).</summary>
public static class RegistrationSources
{
    public const string Configuration = "configuration";
    public const string Admin = "admin";
    public const string Docker = "docker";
    public const string Kubernetes = "kubernetes";
}

/// <summary>
/// A caller the proxy knows: who it is (name, workload id), where it calls from (address or CIDR), how it proves it
/// (<see cref="Proof"/>) and which identities and endpoints it may use. A registration that is not <see cref="Ready"/> is still being wired: its requests
/// are held until it is, briefly, then get 503 + Retry-After instead of 403, so SDKs retry rather than fail.
/// </summary>
public sealed record ClientRegistration
{
    public required string Name { get; init; }
    public required AddressRange Address { get; init; }

    /// <summary>Allowed identities in order; the first is used when a request names none. Empty = system-assigned only.</summary>
    public IReadOnlyList<IdentityBinding> Identities { get; init; } = [];

    public required string Source { get; init; }
    public DateTimeOffset RegisteredAt { get; init; }
    /// <summary>
    /// The workload behind the registration, when there is one: the Docker container id, or the pod UID under
    /// Kubernetes. A newer workload that takes the same name or address is a different owner.
    /// </summary>
    public string? WorkloadId { get; init; }

    /// <summary>Resources to fetch in the background as soon as the client registers.</summary>
    public IReadOnlyList<string> Prefetch { get; init; } = [];

    /// <summary>
    /// Endpoints this client may use beyond those every client may (by name: userdata, attested, scheduledevents,
    /// identity-info…). Names are checked where registrations are made; an unknown name grants nothing.
    /// </summary>
    public IReadOnlyList<string> Endpoints { get; init; } = [];

    public bool Ready { get; init; } = true;

    /// <summary>What the client must show to be served (docs/proof-of-caller.md).</summary>
    public ProofPolicy Proof { get; init; } = ProofPolicy.Address;

    /// <summary>The digest of the client's App Service identity header; required by every policy but <see cref="ProofPolicy.Address"/>.</summary>
    public IdentityHeaderDigest? IdentityHeader { get; init; }

    /// <summary>
    /// Found by its identity header rather than its address: such clients share address ranges (a node's pod CIDR, a
    /// whole Docker network), so the registry keeps them out of its address index.
    /// </summary>
    public bool FoundBySecret => Proof == ProofPolicy.Secret;

    /// <summary>The identity a request that names none gets: the first entry, or system-assigned.</summary>
    public IdentitySelector DefaultIdentity =>
        Identities.Count == 0 || Identities[0].IsAny ? IdentitySelector.SystemAssigned : Identities[0].Selector;

    /// <summary>Decides which identity a request really asks for, or null when this client may not use it.</summary>
    public IdentitySelector? Resolve(IdentitySelector? requested)
    {
        if (requested is not { } wanted)
        {
            return DefaultIdentity;
        }

        if (Identities.Count == 0)
        {
            return wanted.Kind == SelectorKind.SystemAssigned ? wanted : null;
        }

        foreach (var binding in Identities)
        {
            if (binding.Allows(wanted))
            {
                return wanted;
            }
        }

        return null;
    }

    /// <summary>True when this client could be served a token for <paramref name="identity"/>.</summary>
    public bool CanReach(IdentitySelector identity) =>
        identity == DefaultIdentity || Resolve(identity) is not null;
}
