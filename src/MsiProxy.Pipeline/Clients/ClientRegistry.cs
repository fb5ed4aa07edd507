using System.Net;

namespace MsiProxy.Clients;

/// <summary>
/// The one registry of callers, fed by configuration, the admin API, the Docker monitor and Kubernetes.
/// Reads (one per request) are lock-free: they see an immutable snapshot that writers replace atomically.
/// </summary>
public sealed class ClientRegistry
{
    private readonly Lock _writeLock = new();
    private readonly TimeProvider _time;
    private volatile Snapshot _snapshot = Snapshot.Empty;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientRegistry(TimeProvider time) => _time = time;

    /// <summary>Raised after a registration was added or replaced (never under the write lock).</summary>
    public event Action<ClientRegistration>? Registered;

    /// <summary>Raised after a registration was removed, including when a new owner took its address or name.</summary>
    public event Action<ClientRegistration>? Deregistered;

    public int Count => _snapshot.ByName.Count;

    public IReadOnlyCollection<ClientRegistration> All => _snapshot.ByName.Values;

    /// <summary>
    /// The registration responsible for <paramref name="caller"/>: an exact address first, then the longest CIDR.
    /// Clients found by their secret (<see cref="FindBySecret"/>) are not found here.
    /// </summary>
    public ClientRegistration? Find(IPAddress caller)
    {
        var snapshot = _snapshot;
        caller = AddressRange.Normalise(caller);
        if (snapshot.BySingleAddress.TryGetValue(caller, out var exact))
        {
            return exact;
        }

        foreach (var registration in snapshot.Ranges)
        {
            if (registration.Address.Contains(caller))
            {
                return registration;
            }
        }

        return null;
    }

    /// <summary>
    /// The <see cref="ProofPolicy.Secret"/> client whose identity header <paramref name="presented"/> is, if any. The
    /// look-up is by the secret's SHA-256 (nothing about the secret can be learnt from its timing); the match is then
    /// confirmed in constant time. Several clients may share one secret (a Kubernetes binding's replicas read theirs from
    /// one Secret), each at its own address: the one whose range holds <paramref name="caller"/> is returned, or, when
    /// none does, one of them, so that the caller is refused for its address rather than for its secret.
    /// </summary>
    public ClientRegistration? FindBySecret(string presented, IPAddress? caller = null)
    {
        var digest = IdentityHeaderDigest.Of(presented);
        if (!_snapshot.BySecret.TryGetValue(digest.Hex, out var clients) || !clients[0].IdentityHeader!.Equals(digest))
        {
            return null;
        }

        if (caller is not null)
        {
            caller = AddressRange.Normalise(caller);
            foreach (var client in clients)
            {
                if (client.Address.Contains(caller))
                {
                    return client;
                }
            }
        }

        return clients[0];
    }

    public ClientRegistration? Get(string name) => _snapshot.ByName.GetValueOrDefault(name);

    /// <summary>
    /// Waits until the client responsible for <paramref name="caller"/> is ready, and returns it; returns at once when
    /// no client is (or no longer is). Cancelling ends the wait with <see cref="OperationCanceledException"/>.
    /// </summary>
    public async ValueTask<ClientRegistration?> WaitUntilReadyAsync(IPAddress caller, CancellationToken cancellationToken)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task; // taken before the look-up, so no change in between is missed
            var client = Find(caller);
            if (client is null or { Ready: true })
            {
                return client;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Adds or replaces a registration. Whoever held the same name or the same address before is removed first (and
    /// <see cref="Deregistered"/> fires for it), so a container that inherits a dead one's IP never inherits its identities.
    /// </summary>
    public ClientRegistration Register(ClientRegistration registration)
    {
        Check(registration);
        if (registration.RegisteredAt == default)
        {
            registration = registration with { RegisteredAt = _time.GetUtcNow() };
        }

        List<ClientRegistration> displaced = [];
        lock (_writeLock)
        {
            var byName = _snapshot.ByName.ToDictionary(StringComparer.Ordinal);
            if (byName.Remove(registration.Name, out var previous) && !SameOwner(previous, registration))
            {
                displaced.Add(previous);
            }

            foreach (var other in byName.Values.Where(r => Slot(r) == Slot(registration)).ToList())
            {
                byName.Remove(other.Name);
                displaced.Add(other);
            }

            byName[registration.Name] = registration;
            Publish(Snapshot.Create(byName));
        }

        foreach (var old in displaced)
        {
            Deregistered?.Invoke(old);
        }

        Registered?.Invoke(registration);
        return registration;
    }

    /// <summary>
    /// <see cref="Register"/> for many registrations with one snapshot rebuild: configuration sync with 10,000 clients
    /// took minutes when every registration copied the whole registry (benchmark scenario 4, docs/benchmarks.md).
    /// Same rules, applied in order: a registration displaces whoever held its name or its address.
    /// </summary>
    public void RegisterAll(IReadOnlyList<ClientRegistration> registrations)
    {
        List<ClientRegistration> displaced = [];
        var added = new Dictionary<string, ClientRegistration>(StringComparer.Ordinal);
        lock (_writeLock)
        {
            var byName = _snapshot.ByName.ToDictionary(StringComparer.Ordinal);
            var bySlot = byName.Values.ToDictionary(Slot, r => r.Name, StringComparer.Ordinal);
            foreach (var candidate in registrations)
            {
                Check(candidate);
                var registration = candidate.RegisteredAt == default ? candidate with { RegisteredAt = _time.GetUtcNow() } : candidate;
                var slot = Slot(registration);
                if (byName.Remove(registration.Name, out var previous))
                {
                    bySlot.Remove(Slot(previous));
                    Displace(previous, !SameOwner(previous, registration));
                }

                if (bySlot.Remove(slot, out var holder) && byName.Remove(holder, out var other))
                {
                    Displace(other, true);
                }

                byName[registration.Name] = registration;
                bySlot[slot] = registration.Name;
                added[registration.Name] = registration;
            }

            Publish(Snapshot.Create(byName));
        }

        foreach (var old in displaced)
        {
            Deregistered?.Invoke(old);
        }

        foreach (var registration in added.Values)
        {
            Registered?.Invoke(registration);
        }

        // One displaced by a later entry of the same batch was never visible: no events for it.
        void Displace(ClientRegistration old, bool notify)
        {
            if (!added.Remove(old.Name) && notify)
            {
                displaced.Add(old);
            }
        }
    }

    public bool Deregister(string name) => RemoveWhere(r => r.Name == name) > 0;

    /// <summary>Removes every registration matching <paramref name="predicate"/>; returns how many were removed.</summary>
    public int RemoveWhere(Func<ClientRegistration, bool> predicate)
    {
        List<ClientRegistration> removed;
        lock (_writeLock)
        {
            removed = _snapshot.ByName.Values.Where(predicate).ToList();
            if (removed.Count == 0)
            {
                return 0;
            }

            var byName = _snapshot.ByName.ToDictionary(StringComparer.Ordinal);
            foreach (var registration in removed)
            {
                byName.Remove(registration.Name);
            }

            Publish(Snapshot.Create(byName));
        }

        foreach (var registration in removed)
        {
            Deregistered?.Invoke(registration);
        }

        return removed.Count;
    }

    private void Publish(Snapshot snapshot)
    {
        _snapshot = snapshot;
        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
    }

    private static void Check(ClientRegistration registration)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(registration.Name);
        if (registration.Proof.NeedsSecret() && registration.IdentityHeader is null)
        {
            throw new ArgumentException($"Client {registration.Name}: proof '{registration.Proof.Name()}' needs an identity header digest.");
        }
    }

    /// <summary>
    /// What a registration owns exclusively, so that a newcomer holding it displaces the old holder: its address — or,
    /// for a client found by its secret, that secret at that address (many such clients may share one address range,
    /// and replicas share one secret).
    /// </summary>
    private static string Slot(ClientRegistration r) =>
        r.FoundBySecret ? "secret " + r.IdentityHeader!.Hex + " at " + r.Address : "address " + r.Address;

        /// <summary>Same workload (or same static entry) re-registering, e.g. to flip Ready or change identities.</summary>
    private static bool SameOwner(ClientRegistration a, ClientRegistration b) =>
        a.Address == b.Address && a.WorkloadId == b.WorkloadId && a.Identities.SequenceEqual(b.Identities);

    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = Create(new Dictionary<string, ClientRegistration>());

        private Snapshot(Dictionary<string, ClientRegistration> byName,
            Dictionary<IPAddress, ClientRegistration> bySingleAddress, ClientRegistration[] ranges, Dictionary<string, ClientRegistration[]> bySecret)
        {
            ByName = byName;
            BySingleAddress = bySingleAddress;
            Ranges = ranges;
            BySecret = bySecret;
        }

        // Plain dictionaries: never mutated after publication, so concurrent reads are safe and rebuilds stay cheap.
        public Dictionary<string, ClientRegistration> ByName { get; }
        public Dictionary<IPAddress, ClientRegistration> BySingleAddress { get; }

        /// <summary>CIDR registrations, longest prefix first so the most specific wins.</summary>
        public ClientRegistration[] Ranges { get; }

        /// <summary><see cref="ProofPolicy.Secret"/> clients by the hex SHA-256 of their identity header, longest prefix first.</summary>
        public Dictionary<string, ClientRegistration[]> BySecret { get; }

        public static Snapshot Create(Dictionary<string, ClientRegistration> byName)
        {
            var byAddress = byName.Values.Where(r => !r.FoundBySecret).ToList();
            return new(
                new Dictionary<string, ClientRegistration>(byName, StringComparer.Ordinal),
                byAddress.Where(r => r.Address.IsSingleAddress).ToDictionary(r => r.Address.Network),
                [.. byAddress.Where(r => !r.Address.IsSingleAddress).OrderByDescending(r => r.Address.PrefixLength)],
                byName.Values.Where(r => r.FoundBySecret).GroupBy(r => r.IdentityHeader!.Hex, StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => g.OrderByDescending(r => r.Address.PrefixLength).ToArray(), StringComparer.Ordinal));
        }
    }
}
