using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Clients;
using MsiProxy.Docker;
using MsiProxy.Tests.Docker;

namespace MsiProxy.Tests.Clients;

/// <summary>Issue 16's pure parts: the proof policies as configured, the secret digest, the registry's secret index, the labels.</summary>
public sealed class CallerProofTests
{
    private const string Secret = "4f1d0c2b9a8e7d6c5b4a39281706f5e4";
    private static readonly string Digest = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Secret)));

    [Theory]
    [InlineData(null, null, "address")]
    [InlineData("address", null, "address")]
    [InlineData("Address+Secret", "digest", "address+secret")]
    [InlineData(" secret ", "DIGEST", "secret")]
    public void Policies_and_digests_are_read_as_configured(string? proof, string? sha256, string expected)
    {
        var digestText = sha256 switch { "digest" => Digest, "DIGEST" => Digest.ToUpperInvariant(), _ => null };

        Assert.True(ProofPolicies.TryRead(proof, digestText, out var policy, out var digest, out var error), error);

        Assert.Equal(expected, policy.Name());
        Assert.Equal(digestText is not null, digest?.Matches(Secret) ?? false);
    }

    [Theory]
    [InlineData("ip", null, "proof: 'ip' is not a proof policy")]
    [InlineData("address+secret", null, "identityHeaderSha256: required by proof 'address+secret'")]
    [InlineData("secret", "abc", "identityHeaderSha256: must be 64 hex digits")]
    [InlineData("secret", "zz", "identityHeaderSha256: must be 64 hex digits")]
    [InlineData(null, "digest", "proof: 'address' does not use identityHeaderSha256")]
    public void A_policy_without_its_digest_or_a_digest_without_its_policy_is_refused_naming_the_field(string? proof, string? sha256, string expected)
    {
        Assert.False(ProofPolicies.TryRead(proof, sha256 == "digest" ? Digest : sha256, out _, out _, out var error));
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_digest_matches_only_its_own_secret_and_never_shows_itself()
    {
        var digest = IdentityHeaderDigest.Of(Secret);

        Assert.True(digest.Matches(Secret));
        Assert.False(digest.Matches(Secret.ToUpperInvariant()));
        Assert.False(digest.Matches(Secret + " "));
        Assert.False(digest.Matches(""));
        Assert.True(IdentityHeaderDigest.TryParse(Digest, out var parsed) && parsed.Equals(digest));
        Assert.DoesNotContain(Digest[..8], digest.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Secret_clients_are_found_by_their_secret_not_their_range_and_a_second_owner_of_a_secret_at_the_same_address_displaces_the_first()
    {
        var registry = new ClientRegistry(new FakeTimeProvider());
        var gone = new List<string>();
        registry.Deregistered += r => gone.Add(r.Name);
        registry.Register(SecretClient("pod-a", "10.244.1.0/24", Secret));
        registry.Register(SecretClient("pod-b", "10.244.1.0/24", Secret + "b")); // same range: both stay
        registry.Register(new ClientRegistration { Name = "plain", Address = AddressRange.Parse("10.244.1.7"), Source = RegistrationSources.Admin });

        Assert.Empty(gone);
        Assert.Equal("pod-a", registry.FindBySecret(Secret)?.Name);
        Assert.Equal("pod-b", registry.FindBySecret(Secret + "b")?.Name);
        Assert.Null(registry.FindBySecret("guess"));
        Assert.Null(registry.Find(IPAddress.Parse("10.244.1.9")));
        Assert.Equal("plain", registry.Find(IPAddress.Parse("10.244.1.7"))?.Name);

        // Replicas share one secret, each at its own address: both stay, and the caller's address picks.
        registry.RegisterAll([SecretClient("pod-c", "10.244.2.0/24", Secret)]);
        Assert.Empty(gone);
        Assert.Equal("pod-c", registry.FindBySecret(Secret, IPAddress.Parse("10.244.2.8"))?.Name);
        Assert.Equal("pod-a", registry.FindBySecret(Secret, IPAddress.Parse("10.244.1.8"))?.Name);

        registry.Register(SecretClient("pod-d", "10.244.2.0/24", Secret));
        Assert.Equal(["pod-c"], gone);
        Assert.Equal("pod-d", registry.FindBySecret(Secret, IPAddress.Parse("10.244.2.8"))?.Name);
    }

    [Fact]
    public void A_registration_whose_policy_needs_a_secret_but_has_none_is_refused()
    {
        var registry = new ClientRegistry(new FakeTimeProvider());

        var error = Assert.Throws<ArgumentException>(() => registry.Register(new ClientRegistration
        {
            Name = "x", Address = AddressRange.Parse("10.0.0.1"), Proof = ProofPolicy.AddressAndSecret, Source = RegistrationSources.Admin,
        }));
        Assert.Contains("address+secret", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, registry.Count);
    }

    [Theory]
    [InlineData(true, null, "address+secret", null)]
    [InlineData(false, null, "address", null)]
    [InlineData(true, "address", "address", null)]
    [InlineData(true, "secret", "secret", null)]
    [InlineData(false, "address+secret", "address+secret", "needs IDENTITY_HEADER")]
    [InlineData(true, "cert", "address", "is not a proof policy")]
    public void A_container_started_with_IDENTITY_HEADER_defaults_to_address_and_secret_and_the_label_can_say_otherwise(bool withSecret,
        string? label, string expected, string? problem)
    {
        var labels = FakeContainerEngine.ClientLabels("system");
        if (label is not null)
        {
            labels["msi-proxy.proof"] = label;
        }

        var environment = withSecret ? new[] { "PATH=/bin", "IDENTITY_HEADER=old", "IDENTITY_HEADER=" + Secret } : ["PATH=/bin"];
        var container = FakeContainerEngine.Container("c1", "app", "172.18.0.5", labels) with { IdentityHeader = ContainerInfo.IdentityHeaderIn(environment) };

        var spec = new ContainerLabels(new DockerMonitorOptions()).ReadClient(container);

        Assert.Equal(expected, spec.Proof.Name());
        if (problem is null)
        {
            Assert.Null(spec.Problem);
            Assert.Equal(spec.Proof != ProofPolicy.Address, spec.IdentityHeader?.Matches(Secret) ?? false); // the last IDENTITY_HEADER wins
        }
        else
        {
            Assert.Contains(problem, spec.Problem, StringComparison.Ordinal);
        }
    }

    private static ClientRegistration SecretClient(string name, string range, string secret) => new()
    {
        Name = name, Address = AddressRange.Parse(range), Proof = ProofPolicy.Secret, IdentityHeader = IdentityHeaderDigest.Of(secret),
        Source = RegistrationSources.Kubernetes,
    };
}
