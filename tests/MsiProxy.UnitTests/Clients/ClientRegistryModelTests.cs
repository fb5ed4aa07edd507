using System.Net;
using CsCheck;
using MsiProxy.Clients;

namespace MsiProxy.UnitTests.Clients;

/// <summary>
/// The registry's indexes are updated in place (one write is O(log n)): any sequence of writes must leave it answering
/// exactly as the naive model — a list where a newcomer removes whoever had its name or its slot — and readers running
/// beside the writers must only ever see whole writes.
/// </summary>
public sealed class ClientRegistryModelTests
{
    private static readonly string[] Addresses = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.0.0/24", "10.0.0.0/16", "10.0.1.0/24"];
    private static readonly string[] Callers = ["10.0.0.1", "10.0.0.2", "10.0.0.9", "10.0.1.1", "10.0.1.7", "10.0.2.2", "10.9.9.9"];
    private static readonly string[] Secrets = ["s1", "s2"];

    private sealed record Op(int Kind, int Name, int Address, int Secret, bool BySecret, int Workload);

    private static readonly Gen<Op> Ops = Gen.Select(Gen.Int[0, 9], Gen.Int[0, 5], Gen.Int[0, Addresses.Length - 1], Gen.Int[0, 1], Gen.Bool, Gen.Int[0, 1],
        (k, n, a, s, b, w) => new Op(k, n, a, s, b, w));

    private static ClientRegistration Client(Op op) => new()
    {
        Name = $"c{op.Name}",
        Address = AddressRange.Parse(Addresses[op.Address]),
        Identities = [IdentityBinding.Any],
        Source = RegistrationSources.Admin,
        WorkloadId = $"w{op.Workload}",
        Proof = op.BySecret ? ProofPolicy.Secret : ProofPolicy.Address,
        IdentityHeader = op.BySecret ? IdentityHeaderDigest.Of(Secrets[op.Secret]) : null,
        RegisteredAt = DateTimeOffset.UnixEpoch,
    };

    private static string Slot(ClientRegistration r) => r.FoundBySecret ? $"{r.IdentityHeader!.Hex} {r.Address}" : $"{r.Address}";

    [Fact]
    public void Any_sequence_of_writes_leaves_the_registry_answering_as_the_naive_model()
    {
        Ops.Array[1, 40].Sample(ops =>
        {
            var registry = new ClientRegistry(TimeProvider.System);
            var model = new List<ClientRegistration>();
            foreach (var op in ops)
            {
                switch (op.Kind)
                {
                    case <= 5:
                        var client = Client(op);
                        registry.Register(client);
                        model.RemoveAll(r => r.Name == client.Name || Slot(r) == Slot(client));
                        model.Add(client);
                        break;
                    case 6 or 7:
                        var batch = new[] { Client(op), Client(op with { Name = (op.Name + 1) % 6, Address = (op.Address + 1) % Addresses.Length }) };
                        registry.RegisterAll(batch);
                        foreach (var one in batch)
                        {
                            model.RemoveAll(r => r.Name == one.Name || Slot(r) == Slot(one));
                            model.Add(one);
                        }

                        break;
                    case 8:
                        Assert.Equal(model.RemoveAll(r => r.Name == $"c{op.Name}") > 0, registry.Deregister($"c{op.Name}"));
                        break;
                    default:
                        Assert.Equal(model.RemoveAll(r => r.WorkloadId == $"w{op.Workload}"), registry.RemoveWhere(r => r.WorkloadId == $"w{op.Workload}"));
                        break;
                }

                Assert.Equal(model.Count, registry.Count);
                Assert.Equal(model.Select(r => r.Name).Order(), registry.All.Select(r => r.Name).Order());
                foreach (var caller in Callers.Select(IPAddress.Parse))
                {
                    var expected = model.Where(r => !r.FoundBySecret && r.Address.Contains(caller)).MaxBy(r => r.Address.PrefixLength);
                    Assert.Equal(expected?.Name, registry.Find(caller)?.Name);
                    foreach (var secret in Secrets)
                    {
                        var holders = model.Where(r => r.FoundBySecret && r.IdentityHeader!.Equals(IdentityHeaderDigest.Of(secret))).ToList();
                        var found = registry.FindBySecret(secret, caller);
                        var inRange = holders.Where(r => r.Address.Contains(caller)).MaxBy(r => r.Address.PrefixLength);
                        Assert.Equal(holders.Count == 0, found is null);
                        if (inRange is not null)
                        {
                            Assert.Equal(inRange.Name, found?.Name);
                        }
                    }
                }

                foreach (var r in model)
                {
                    Assert.Same(r, registry.Get(r.Name));
                }
            }
        }, iter: 1000);
    }

    [Fact]
    public async Task Readers_beside_writers_never_see_an_address_held_twice_or_by_nobody()
    {
        var registry = new ClientRegistry(TimeProvider.System);
        var shared = IPAddress.Parse("10.0.0.5");
        ClientRegistration At(string name, string address) => new()
        {
            Name = name, Address = AddressRange.Parse(address), Identities = [IdentityBinding.Any], Source = RegistrationSources.Admin,
        };
        registry.Register(At("a", "10.0.0.5"));
        var done = 0;
        var reads = 0L;
        // The writer starts once both readers are reading: on a loaded machine it could otherwise finish before either ran.
        using var readersStarted = new CountdownEvent(2);

        // The writer moves two names across two addresses: every write displaces someone, so a torn write would show
        // one address with two holders, or with none.
        var writer = Task.Run(() =>
        {
            readersStarted.Wait();
            for (var i = 0; i < 20_000; i++)
            {
                registry.Register(At(i % 2 == 0 ? "b" : "a", "10.0.0.5"));
                registry.Register(At(i % 2 == 0 ? "a" : "b", i % 3 == 0 ? "10.0.0.6" : "10.0.0.5"));
            }

            Volatile.Write(ref done, 1);
        });
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            readersStarted.Signal();
            while (Volatile.Read(ref done) == 0)
            {
                var holder = registry.Find(shared);
                Assert.NotNull(holder);
                Assert.True(holder.Address.Contains(shared));
                var all = registry.All;
                var listed = all.ToList();
                Assert.Equal(all.Count, listed.Count);
                Assert.Single(listed, r => r.Address.Contains(shared));
                Assert.Equal(listed.Count, listed.Select(r => r.Address).Distinct().Count());
                Interlocked.Increment(ref reads);
            }
        })).ToArray();

        await Task.WhenAll([writer, .. readers]).WaitAsync(TimeSpan.FromMinutes(1)); // a reader's failed assertion fails the test here
        Assert.True(Interlocked.Read(ref reads) > 0);
    }
}
