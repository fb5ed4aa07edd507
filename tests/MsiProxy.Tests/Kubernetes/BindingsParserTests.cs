using MsiProxy.Clients;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.Tests.Kubernetes;

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

    [Theory]
    [InlineData("bindings:\n  - serviceAccount: api\n    identities: [system]\n", "bindings[0].namespace is required")]
    [InlineData("bindings:\n  - namespace: a\n    identities: [system]\n", "bindings[0].serviceAccount is required")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n", "bindings[0].identities must list at least one identity")]
    [InlineData("bindings:\n  - namespace: a\n    serviceAccount: b\n    identities: [client_id=nope]\n", "bindings[0].identities[0] = 'client_id=nope'")]
    [InlineData("bindings:\n  - namespace: a\n    serviceaccount: b\n    identities: [system]\n", "serviceaccount")]
    [InlineData("bindings: [ { namespace: a\n", "not valid")]
    public void Mistakes_are_errors_that_say_where(string text, string expected)
    {
        var error = Assert.Throws<FormatException>(() => BindingsParser.Parse(text));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
