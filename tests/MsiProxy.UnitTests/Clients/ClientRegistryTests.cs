using System.Net;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Clients;

namespace MsiProxy.UnitTests.Clients;

public sealed class ClientRegistryTests
{
    private static ClientRegistration Client(string name, string address, params string[] identities) => new()
    {
        Name = name,
        Address = AddressRange.Parse(address),
        Identities = IdentityBinding.ParseAll(identities),
        Source = RegistrationSources.Admin,
    };

    [Fact]
    public void Two_parses_of_one_address_are_the_same_range()
    {
        Assert.Equal(AddressRange.Parse("10.1.2.3"), AddressRange.Parse("10.1.2.3"));
        Assert.Equal(AddressRange.Parse("10.1.2.0/24"), AddressRange.Parse("10.1.2.77/24"));
        Assert.Equal(AddressRange.Parse("::ffff:10.1.2.3"), AddressRange.Parse("10.1.2.3"));
        Assert.NotEqual(AddressRange.Parse("10.1.2.0/24"), AddressRange.Parse("10.1.2.0/25"));
        Assert.Equal(AddressRange.Parse("fd00::1").GetHashCode(), AddressRange.Parse("FD00:0::1").GetHashCode());
    }

    [Fact]
    public void A_new_owner_of_an_address_displaces_the_old_one_and_it_is_reported_deregistered()
    {
        var registry = new ClientRegistry(new FakeTimeProvider());
        var gone = new List<string>();
        registry.Deregistered += r => gone.Add(r.Name);
        registry.Register(Client("old", "10.0.0.5", "client_id=11111111-1111-1111-1111-111111111111"));
        registry.Register(Client("new", "10.0.0.5", "client_id=22222222-2222-2222-2222-222222222222"));

        Assert.Equal(["old"], gone);
        Assert.Equal("new", registry.Find(IPAddress.Parse("10.0.0.5"))!.Name);
        Assert.Null(registry.Get("old"));
        Assert.Equal(1, registry.Count);
    }

    [Fact]
    public void The_same_owner_re_registering_is_not_a_deregistration()
    {
        var registry = new ClientRegistry(new FakeTimeProvider());
        var gone = new List<string>();
        registry.Deregistered += r => gone.Add(r.Name);
        registry.Register(Client("app", "10.0.0.5", "*"));
        registry.Register(Client("app", "10.0.0.5", "*") with { Ready = false });
        Assert.Empty(gone);

        registry.Register(Client("app", "10.0.0.5", "system"));
        Assert.Equal(["app"], gone);
    }

    [Fact]
    public void Secret_clients_sharing_one_secret_at_different_addresses_coexist_and_each_is_found_from_its_own_address()
    {
        // Replicas of one Kubernetes binding read their identity header from one Secret: two registrations, one digest.
        var registry = new ClientRegistry(new FakeTimeProvider());
        var gone = new List<string>();
        registry.Deregistered += r => gone.Add(r.Name);
        ClientRegistration Replica(string name, string address, string secret) =>
            Client(name, address, "system") with { Proof = ProofPolicy.Secret, IdentityHeader = IdentityHeaderDigest.Of(secret) };
        registry.Register(Replica("ns/api-0", "10.244.1.7", "shared-secret"));
        registry.Register(Replica("ns/api-1", "10.244.1.8", "shared-secret"));

        Assert.Empty(gone);
        Assert.Equal("ns/api-0", registry.FindBySecret("shared-secret", IPAddress.Parse("10.244.1.7"))!.Name);
        Assert.Equal("ns/api-1", registry.FindBySecret("shared-secret", IPAddress.Parse("::ffff:10.244.1.8"))!.Name);
        // From elsewhere it is still found by its secret, so that the gate refuses it for its address.
        Assert.False(registry.FindBySecret("shared-secret", IPAddress.Parse("10.244.1.9"))!.Address.Contains(IPAddress.Parse("10.244.1.9")));
        Assert.Null(registry.FindBySecret("other-secret", IPAddress.Parse("10.244.1.7")));
        Assert.Null(registry.Find(IPAddress.Parse("10.244.1.7")));

        // The same secret at the same address is the same slot: the newcomer displaces the old holder.
        registry.Register(Replica("ns/api-2", "10.244.1.8", "shared-secret"));
        Assert.Equal(["ns/api-1"], gone);
        Assert.Equal("ns/api-2", registry.FindBySecret("shared-secret", IPAddress.Parse("10.244.1.8"))!.Name);
        Assert.Equal(2, registry.Count);
    }

    [Fact]
    public void Lookups_prefer_an_exact_address_then_the_longest_prefix_and_handle_ipv6()
    {
        var registry = new ClientRegistry(new FakeTimeProvider());
        registry.Register(Client("wide", "10.0.0.0/8"));
        registry.Register(Client("narrow", "10.1.0.0/16"));
        registry.Register(Client("exact", "10.1.2.3"));
        registry.Register(Client("v6", "fd00:1::/64"));

        Assert.Equal("exact", registry.Find(IPAddress.Parse("10.1.2.3"))!.Name);
        Assert.Equal("exact", registry.Find(IPAddress.Parse("::ffff:10.1.2.3"))!.Name);
        Assert.Equal("narrow", registry.Find(IPAddress.Parse("10.1.9.9"))!.Name);
        Assert.Equal("wide", registry.Find(IPAddress.Parse("10.200.0.1"))!.Name);
        Assert.Equal("v6", registry.Find(IPAddress.Parse("fd00:1::abcd"))!.Name);
        Assert.Null(registry.Find(IPAddress.Parse("fd00:2::1")));
        Assert.Null(registry.Find(IPAddress.Parse("11.0.0.1")));
    }

    [Theory]
    [InlineData("client_id=AAAAAAAA-1111-1111-1111-111111111111", "ClientId")]
    [InlineData("object_id=aaaaaaaa-1111-1111-1111-111111111111", "ObjectId")]
    [InlineData("aaaaaaaa-1111-1111-1111-111111111111", "ClientId")]
    [InlineData("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id", "ResourceId")]
    [InlineData("msi_res_id=/subscriptions/s/rg", "ResourceId")]
    [InlineData("system", "SystemAssigned")]
    public void Typed_bindings_parse(string text, string kind)
    {
        Assert.True(IdentityBinding.TryParse(text, out var binding, out _));
        Assert.Equal(kind, binding.Selector.Kind.ToString());
        Assert.False(binding.IsAny);
    }

    [Theory]
    [InlineData("")]
    [InlineData("client_id=not-a-guid")]
    [InlineData("msi_res_id=/resourceGroups/x")]
    [InlineData("tenant=abc")]
    [InlineData("hello")]
    public void Bad_bindings_are_refused_with_a_reason(string text)
    {
        Assert.False(IdentityBinding.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Fact]
    public void Resolution_follows_the_bindings_case_insensitively()
    {
        var bound = Client("a", "10.0.0.1", "client_id=aaaaaaaa-1111-1111-1111-111111111111", "system");
        Assert.Equal(IdentitySelector.Create(SelectorKind.ClientId, "aaaaaaaa-1111-1111-1111-111111111111"), bound.Resolve(null));
        Assert.NotNull(bound.Resolve(IdentitySelector.Create(SelectorKind.ClientId, "AAAAAAAA-1111-1111-1111-111111111111")));
        Assert.Equal(IdentitySelector.SystemAssigned, bound.Resolve(IdentitySelector.SystemAssigned));
        Assert.Null(bound.Resolve(IdentitySelector.Create(SelectorKind.ClientId, "bbbbbbbb-1111-1111-1111-111111111111")));

        var none = Client("b", "10.0.0.2");
        Assert.Equal(IdentitySelector.SystemAssigned, none.Resolve(null));
        Assert.Null(none.Resolve(IdentitySelector.Create(SelectorKind.ObjectId, "aaaaaaaa-1111-1111-1111-111111111111")));

        var any = Client("c", "10.0.0.3", "*");
        Assert.Equal(IdentitySelector.SystemAssigned, any.Resolve(null));
        Assert.NotNull(any.Resolve(IdentitySelector.Create(SelectorKind.ResourceId, "/subscriptions/x")));
    }
}
