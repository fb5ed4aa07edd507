using System.Net;
using MsiProxy.Clients;

namespace MsiProxy.UnitTests.Clients;

/// <summary>RegisterAll: the configuration-sync path, one snapshot rebuild for many registrations, same displacement rules.</summary>
public sealed class ClientRegistryBatchTests
{
    private static ClientRegistration Client(string name, string address) => new()
    {
        Name = name,
        Address = AddressRange.Parse(address),
        Identities = [IdentityBinding.Any],
        Source = RegistrationSources.Configuration,
    };

    [Fact]
    public void Ten_thousand_registrations_are_registered_at_once_and_all_found()
    {
        var registry = new ClientRegistry(TimeProvider.System);
        var registered = 0;
        registry.Registered += _ => registered++;
        var clients = Enumerable.Range(0, 10_000).Select(i => Client($"c{i}", $"10.{1 + (i / 65536)}.{i / 256 % 256}.{i % 256}")).ToList();

        registry.RegisterAll(clients);

        Assert.Equal(10_000, registry.Count);
        Assert.Equal(10_000, registered);
        Assert.Equal("c4242", registry.Find(IPAddress.Parse("10.1.16.146"))?.Name);
    }

    [Fact]
    public void A_registration_displaces_the_holder_of_its_address_and_name_and_only_visible_ones_raise_deregistered()
    {
        var registry = new ClientRegistry(TimeProvider.System);
        registry.Register(Client("old", "10.0.0.1"));
        var deregistered = new List<string>();
        var registeredNames = new List<string>();
        registry.Deregistered += r => deregistered.Add(r.Name);
        registry.Registered += r => registeredNames.Add(r.Name);

        registry.RegisterAll([Client("new", "10.0.0.1"), Client("gone", "10.0.0.2"), Client("later", "10.0.0.2")]);

        Assert.Equal("new", registry.Find(IPAddress.Parse("10.0.0.1"))?.Name);
        Assert.Equal("later", registry.Find(IPAddress.Parse("10.0.0.2"))?.Name);
        Assert.Null(registry.Get("old"));
        Assert.Null(registry.Get("gone"));
        Assert.Equal(["old"], deregistered);
        Assert.Equal(["later", "new"], registeredNames.Order());
    }
}
