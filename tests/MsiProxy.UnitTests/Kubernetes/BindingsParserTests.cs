using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.UnitTests.Kubernetes;

public sealed class BindingsParserTests
{
    private static readonly PodInfo Api = new()
    {
        Uid = "u1", Namespace = "team-a", Name = "api-0", ServiceAccount = "api",
        Labels = new Dictionary<string, string> { ["app"] = "api", ["tier"] = "web" },
    };

    [Fact]
    public void Yaml_bindings_match_namespace_service_account_and_every_selector_label()
    {
        var set = BindingsParser.Parse("""
            bindings:
              - namespace: team-a
                serviceAccount: api
                podSelector: { matchLabels: { app: api, tier: web } }
                identities: ["client_id=a1a1a1a1-0000-4000-8000-00000000000a", "system"]
              - namespace: team-a
                serviceAccount: api
                podSelector: { matchLabels: { app: other } }
                identities: ["b2b2b2b2-0000-4000-8000-00000000000b"]
              - namespace: team-b
                serviceAccount: api
                identities: ["*"]
            """);
        Assert.Equal(3, set.Bindings.Count);
        var identities = set.IdentitiesFor(Api);
        Assert.Equal(2, identities.Count);
        Assert.Equal(IdentitySelector.Create(SelectorKind.ClientId, "a1a1a1a1-0000-4000-8000-00000000000a"), identities[0].Selector);
        Assert.Same(IdentityBinding.System, identities[1]);
        Assert.Empty(set.IdentitiesFor(Api with { ServiceAccount = "default" }));
        Assert.Empty(set.IdentitiesFor(Api with { Labels = new Dictionary<string, string> { ["app"] = "api" } }));
    }

    [Fact]
    public void Json_is_accepted_too()
    {
        var set = BindingsParser.Parse("""{"bindings":[{"namespace":"team-a","serviceAccount":"api","identities":["system"]}]}""");
        Assert.Single(set.IdentitiesFor(Api));
    }

    [Fact]
    public void An_empty_file_binds_nothing()
    {
        Assert.Empty(BindingsParser.Parse("").Bindings);
        Assert.Empty(BindingsParser.Parse("bindings: []").Bindings);
    }

    [Fact]
    public void A_binding_may_ask_for_the_identity_header_from_a_secret_in_the_pods_namespace()
    {
        var set = BindingsParser.Parse("""
            bindings:
              - namespace: team-a
                serviceAccount: api
                identities: [system]
                proof: address+secret
                identityHeaderSecret: { name: app-identity, key: IDENTITY_HEADER }
              - namespace: team-b
                serviceAccount: api
                identities: [system]
                proof: secret
                identityHeaderSecret: { name: win.identity, key: identity-header_1 }
              - namespace: team-c
                serviceAccount: api
                identities: [system]
            """);

        Assert.Equal(ProofPolicy.AddressAndSecret, set.Bindings[0].Proof);
        Assert.Equal(new SecretKeyReference("app-identity", "IDENTITY_HEADER"), set.Bindings[0].IdentityHeaderSecret);
        Assert.Equal(ProofPolicy.Secret, set.Bindings[1].Proof);
        Assert.Equal(ProofPolicy.Address, set.Bindings[2].Proof);
        Assert.Null(set.Bindings[2].IdentityHeaderSecret);

        // The Secret is always the pod's own namespace's.
        var grant = set.GrantFor(Api, out _)!;
        Assert.Equal(ProofPolicy.AddressAndSecret, grant.Proof);
        Assert.Equal(new SecretReference("team-a", "app-identity", "IDENTITY_HEADER"), grant.IdentityHeaderSecret);
        Assert.Equal(new SecretReference("team-b", "win.identity", "identity-header_1"), set.GrantFor(Api with { Namespace = "team-b" }, out _)!.IdentityHeaderSecret);
        Assert.Null(set.GrantFor(Api with { Namespace = "team-c" }, out _)!.IdentityHeaderSecret);
        Assert.Null(set.GrantFor(Api with { Namespace = "team-d" }, out var problem));
        Assert.Equal("no binding", problem);
    }

    [Fact]
    public void Bindings_that_disagree_on_a_pods_proof_grant_it_nothing()
    {
        // Either binding's proof would serve the other's identities under a weaker proof than its admin chose.
        var set = BindingsParser.Parse("""
            bindings:
              - namespace: team-a
                serviceAccount: api
                identities: [system]
                proof: address+secret
                identityHeaderSecret: { name: app-identity, key: IDENTITY_HEADER }
              - namespace: team-a
                serviceAccount: api
                podSelector: { matchLabels: { tier: web } }
                identities: ["client_id=a1a1a1a1-0000-4000-8000-00000000000a"]
            """);

        Assert.Null(set.GrantFor(Api, out var problem));
        Assert.Contains("disagree", problem, StringComparison.Ordinal);
        Assert.Equal(ProofPolicy.AddressAndSecret, set.GrantFor(Api with { Labels = new Dictionary<string, string>() }, out _)!.Proof);
    }

    [Theory]
    [InlineData("bindings:\n  - serviceAccount: api\n    identities: [system]\n", "bindings[0].namespace is required")]
    [InlineData("bindings:\n  - namespace: a\n    identities: [system]\n", "bindings[0].serviceAccount is required")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n", "bindings[0].identities must list at least one identity")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n    identities: [client_id=nope]\n", "bindings[0].identities[0] = 'client_id=nope'")]
    [InlineData("bindings:\n  - namespace: a\n    serviceaccount: b\n    identities: [system]\n", "serviceaccount")]
    [InlineData("bindings: [ { namespace: a\n", "not valid")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret}\n", "bindings[0].identityHeaderSecret is required by proof 'secret'")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: address+secret}\n", "bindings[0].identityHeaderSecret is required by proof 'address+secret'")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: header}\n", "bindings[0].proof: 'header' is not a proof policy")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], identityHeaderSecret: {name: s, key: k}}\n", "bindings[0].identityHeaderSecret is not used by proof 'address'")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {key: k}}\n", "bindings[0].identityHeaderSecret.name is required")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: s}}\n", "bindings[0].identityHeaderSecret.key is required")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: App_Identity, key: k}}\n", "bindings[0].identityHeaderSecret.name = 'App_Identity' is not a Secret name")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: s, key: \"a/b\"}}\n", "bindings[0].identityHeaderSecret.key = 'a/b' is not a Secret key")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: s, key: k, namespace: other}}\n", "bindings[0].identityHeaderSecret has an unknown key 'namespace'")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n    identities: [system]\n    identities: [\"*\"]\n", "Duplicate key")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n    identities: [system]\n    \"identities\": [\"*\"]\n", "Duplicate key")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], podSelector: {matchLabels: {~: x, null: y}}}\n", "bindings[0].podSelector.matchLabels has the key '' twice")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system]}\n---\nbindings:\n  - {namespace: a, serviceAccount: b, identities: [\"*\"]}\n", "it holds 2 YAML documents")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [[system]]}\n", "bindings[0].identities[0] must be a single value")]
    [InlineData("bindings:\n  - {namespace: [a], serviceAccount: b, identities: [system]}\n", "bindings[0].namespace must be a single value")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: system}\n", "bindings[0].identities must be a list")]
    [InlineData("bindings: everything\n", "bindings must be a list")]
    [InlineData("...\nserviceAccount\n", "bindings file is not valid")] // YamlDotNet's scanner threw InvalidOperationException, which stopped the host
    [InlineData("- namespace: a\n", "the document must be a mapping")]
    [InlineData("binding:\n  - {namespace: a, serviceAccount: b, identities: [system]}\n", "the document has an unknown key 'binding'")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], podSelector: {matchLabels: {app: [x]}}}\n", "bindings[0].podSelector.matchLabels.app must be a single value")]
    [InlineData("bindings:\n  - {namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: s}\n", "not valid")]
    public void Mistakes_are_errors_that_say_where(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => BindingsParser.Parse(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
