using System.Collections.Immutable;
using System.Net;

namespace MsiProxy.Clients;

/// <summary>
/// The one registry of callers, fed by configuration, the admin API, the Docker monitor and Kubernetes.
/// Reads (one per request) are lock-free: they see an immutable snapshot that writers replace atomically. A write
/// costs O(log n) (persistent collections), not a copy of the registry.
/// </summary>
public sealed class ClientRegistry
{
    private readonly Lock _writeLock = new();
    private readonly TimeProvider _time;
    private volatile Snapshot _snapshot = Snapshot.Empty;

    /// <summary>Who holds each slot (<see cref="Slot"/>); the writers' own bookkeeping, only touched under the write lock.</summary>
    private readonly Dictionary<string, string> _bySlot = new(StringComparer.Ordinal);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ClientRegistry(TimeProvider time) => _time = time;

    /// <summary>Raised after a registration was added or replaced (never under the write lock).</summary>
    public event Action<ClientRegistration>? Registered;

    /// <summary>Raised after a registration was removed, including when a new owner took its address or name.</summary>
    public event Action<ClientRegistration>? Deregistered;

    public int Count => _snapshot.ByName.Count;

    public IReadOnlyCollection<ClientRegistration> All => _snapshot.All;

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
            var next = _snapshot.ToBuilder();
            if (Remove(next, registration.Name) is { } previous && !SameOwner(previous, registration))
            {
                displaced.Add(previous);
            }

            if (_bySlot.TryGetValue(Slot(registration), out var holder) && Remove(next, holder) is { } other)
            {
                displaced.Add(other);
            }

            Add(next, registration);
            Publish(next.ToSnapshot());
        }

        foreach (var old in displaced)
        {
            Deregistered?.Invoke(old);
        }

        Registered?.Invoke(registration);
        return registration;
    }

    /// <summary>
    /// <see cref="Register"/> for many registrations, published as one change: configuration sync applies its whole list
    /// at once (readers see all of it or none of it). Same rules, applied in order: a registration displaces whoever held
    /// its name or its address.
    /// </summary>
    public void RegisterAll(IReadOnlyList<ClientRegistration> registrations)
    {
        List<ClientRegistration> displaced = [];
        var added = new Dictionary<string, ClientRegistration>(StringComparer.Ordinal);
        lock (_writeLock)
        {
            var next = _snapshot.ToBuilder();
            try
            {
                foreach (var candidate in registrations)
                {
                    Check(candidate);
                    var registration = candidate.RegisteredAt == default ? candidate with { RegisteredAt = _time.GetUtcNow() } : candidate;
                    if (Remove(next, registration.Name) is { } previous)
                    {
                        Displace(previous, !SameOwner(previous, registration));
                    }

                    if (_bySlot.TryGetValue(Slot(registration), out var holder) && Remove(next, holder) is { } other)
                    {
                        Displace(other, true);
                    }

                    Add(next, registration);
                    added[registration.Name] = registration;
                }
            }
            catch
            {
                // A bad entry changes nothing: the slots go back to what the published snapshot holds.
                RebuildSlots();
                throw;
            }

            Publish(next.ToSnapshot());
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

    public bool Deregister(string name)
    {
        ClientRegistration? removed;
        lock (_writeLock)
        {
            var next = _snapshot.ToBuilder();
            removed = Remove(next, name);
            if (removed is null)
            {
                return false;
            }

            Publish(next.ToSnapshot());
        }

        Deregistered?.Invoke(removed);
        return true;
    }

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

            var next = _snapshot.ToBuilder();
            foreach (var registration in removed)
            {
                Remove(next, registration.Name);
            }

            Publish(next.ToSnapshot());
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

    /// <summary>Takes <paramref name="name"/> out of every index (and its slot); O(log n), O(r) for a range, O(s) for a shared secret.</summary>
    private ClientRegistration? Remove(Snapshot.Builder next, string name)
    {
        if (!next.ByName.TryGetValue(name, out var registration))
        {
            return null;
        }

        next.ByName.Remove(name);
        _bySlot.Remove(Slot(registration));
        if (registration.FoundBySecret)
        {
            var hex = registration.IdentityHeader!.Hex;
            var rest = next.BySecret[hex].Remove(registration, ReferenceEqualityComparer.Instance);
            if (rest.IsEmpty)
            {
                next.BySecret.Remove(hex);
            }
            else
            {
                next.BySecret[hex] = rest;
            }
        }
        else if (registration.Address.IsSingleAddress)
        {
            next.BySingleAddress.Remove(registration.Address.Network);
        }
        else
        {
            next.Ranges = next.Ranges.Remove(registration, ReferenceEqualityComparer.Instance);
        }

        return registration;
    }

    /// <summary>Puts a registration whose name and slot are free into every index.</summary>
    private void Add(Snapshot.Builder next, ClientRegistration registration)
    {
        next.ByName[registration.Name] = registration;
        _bySlot[Slot(registration)] = registration.Name;
        if (registration.FoundBySecret)
        {
            var hex = registration.IdentityHeader!.Hex;
            next.BySecret[hex] = Insert(next.BySecret.GetValueOrDefault(hex, []), registration);
        }
        else if (registration.Address.IsSingleAddress)
        {
            next.BySingleAddress[registration.Address.Network] = registration;
        }
        else
        {
            next.Ranges = Insert(next.Ranges, registration);
        }
    }

    /// <summary>Longest prefix first; among equal prefixes, after those already there (as the registry always ordered them).</summary>
    private static ImmutableArray<ClientRegistration> Insert(ImmutableArray<ClientRegistration> list, ClientRegistration registration)
    {
        var at = 0;
        while (at < list.Length && list[at].Address.PrefixLength >= registration.Address.PrefixLength)
        {
            at++;
        }

        return list.Insert(at, registration);
    }

    private void RebuildSlots()
    {
        _bySlot.Clear();
        foreach (var registration in _snapshot.ByName.Values)
        {
            _bySlot[Slot(registration)] = registration.Name;
        }
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

    /// <summary>
    /// Everything a reader looks at, published as one reference: a reader sees a registration in every index or in none.
    /// Persistent (immutable) collections make each write O(log n) instead of a copy of the whole registry, which made
    /// n registrations through the admin API or the monitor cost O(n²) (docs/benchmarks.md, "Registration and
    /// configuration at scale").
    /// </summary>
    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = new(
            ImmutableDictionary.Create<string, ClientRegistration>(StringComparer.Ordinal),
            ImmutableDictionary<IPAddress, ClientRegistration>.Empty,
            [],
            ImmutableDictionary.Create<string, ImmutableArray<ClientRegistration>>(StringComparer.Ordinal));

        private Snapshot(ImmutableDictionary<string, ClientRegistration> byName, ImmutableDictionary<IPAddress, ClientRegistration> bySingleAddress,
            ImmutableArray<ClientRegistration> ranges, ImmutableDictionary<string, ImmutableArray<ClientRegistration>> bySecret)
        {
            ByName = byName;
            BySingleAddress = bySingleAddress;
            Ranges = ranges;
            BySecret = bySecret;
            All = new Registrations(byName);
        }

        public ImmutableDictionary<string, ClientRegistration> ByName { get; }
        public ImmutableDictionary<IPAddress, ClientRegistration> BySingleAddress { get; }

        /// <summary>CIDR registrations, longest prefix first so the most specific wins.</summary>
        public ImmutableArray<ClientRegistration> Ranges { get; }

        /// <summary><see cref="ProofPolicy.Secret"/> clients by the hex SHA-256 of their identity header, longest prefix first.</summary>
        public ImmutableDictionary<string, ImmutableArray<ClientRegistration>> BySecret { get; }

        public IReadOnlyCollection<ClientRegistration> All { get; }

        public Builder ToBuilder() => new(this);

        /// <summary>The next snapshot, changed in place by one writer (under the write lock) and then published whole.</summary>
        public sealed class Builder(Snapshot from)
        {
            public ImmutableDictionary<string, ClientRegistration>.Builder ByName { get; } = from.ByName.ToBuilder();
            public ImmutableDictionary<IPAddress, ClientRegistration>.Builder BySingleAddress { get; } = from.BySingleAddress.ToBuilder();
            public ImmutableArray<ClientRegistration> Ranges { get; set; } = from.Ranges;
            public ImmutableDictionary<string, ImmutableArray<ClientRegistration>>.Builder BySecret { get; } = from.BySecret.ToBuilder();

            public Snapshot ToSnapshot() => new(ByName.ToImmutable(), BySingleAddress.ToImmutable(), Ranges, BySecret.ToImmutable());
        }

        private sealed class Registrations(ImmutableDictionary<string, ClientRegistration> byName) : IReadOnlyCollection<ClientRegistration>
        {
            public int Count => byName.Count;

            public IEnumerator<ClientRegistration> GetEnumerator() => byName.Values.GetEnumerator();

            System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
        }
    }
}
