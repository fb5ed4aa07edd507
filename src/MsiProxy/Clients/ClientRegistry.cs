using System.Net;

namespace MsiProxy.Clients;

/// <summary>
/// The one registry of callers, fed by configuration, the admin API, the Docker monitor and Kubernetes.
/// Reads (one per request) are lock-free: they see an immutable snapshot that writers replace atomically.
/// </summary>
internal sealed class ClientRegistry
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

    /// <summary>The registration responsible for <paramref name="caller"/>: an exact address first, then the longest CIDR.</summary>
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
        ArgumentException.ThrowIfNullOrWhiteSpace(registration.Name);
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

            foreach (var other in byName.Values.Where(r => r.Address == registration.Address).ToList())
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
            var byAddress = byName.Values.ToDictionary(r => (r.Address.Network, r.Address.PrefixLength), r => r.Name);
            foreach (var candidate in registrations)
            {
                ArgumentException.ThrowIfNullOrWhiteSpace(candidate.Name);
                var registration = candidate.RegisteredAt == default ? candidate with { RegisteredAt = _time.GetUtcNow() } : candidate;
                var address = (registration.Address.Network, registration.Address.PrefixLength);
                if (byName.Remove(registration.Name, out var previous))
                {
                    byAddress.Remove((previous.Address.Network, previous.Address.PrefixLength));
                    Displace(previous, !SameOwner(previous, registration));
                }

                if (byAddress.Remove(address, out var holder) && byName.Remove(holder, out var other))
                {
                    Displace(other, true);
                }

                byName[registration.Name] = registration;
                byAddress[address] = registration.Name;
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

    /// <summary>Same workload (or same static entry) re-registering, e.g. to flip Ready or change identities.</summary>
    private static bool SameOwner(ClientRegistration a, ClientRegistration b) =>
        a.Address == b.Address && a.WorkloadId == b.WorkloadId && a.Identities.SequenceEqual(b.Identities);

    private sealed class Snapshot
    {
        public static readonly Snapshot Empty = Create(new Dictionary<string, ClientRegistration>());

        private Snapshot(Dictionary<string, ClientRegistration> byName,
            Dictionary<IPAddress, ClientRegistration> bySingleAddress, ClientRegistration[] ranges)
        {
            ByName = byName;
            BySingleAddress = bySingleAddress;
            Ranges = ranges;
        }

        // Plain dictionaries: never mutated after publication, so concurrent reads are safe and rebuilds stay cheap.
        public Dictionary<string, ClientRegistration> ByName { get; }
        public Dictionary<IPAddress, ClientRegistration> BySingleAddress { get; }

        /// <summary>CIDR registrations, longest prefix first so the most specific wins.</summary>
        public ClientRegistration[] Ranges { get; }

        public static Snapshot Create(Dictionary<string, ClientRegistration> byName) => new(
            new Dictionary<string, ClientRegistration>(byName, StringComparer.Ordinal),
            byName.Values.Where(r => r.Address.IsSingleAddress).ToDictionary(r => r.Address.Network),
            [.. byName.Values.Where(r => !r.Address.IsSingleAddress).OrderByDescending(r => r.Address.PrefixLength)]);
    }
}
