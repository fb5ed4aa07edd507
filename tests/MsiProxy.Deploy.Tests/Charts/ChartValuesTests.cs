using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>values.yaml, values.schema.json and the templates must agree (Helm enforces the schema on install).</summary>
public partial class ChartValuesTests
{
    private static readonly HelmChart Chart = new(RepositoryPaths.Combine("charts", "msi-proxy"));

    private static readonly JsonNode SchemaJson = JsonNode.Parse(File.ReadAllText(Path.Combine(Chart.Directory, "values.schema.json")))!;

    private static readonly JsonSchema Schema = JsonSchema.FromText(SchemaJson.ToJsonString());

    private static EvaluationResults Validate(object? values)
    {
        using var document = JsonDocument.Parse(YamlValues.ToJson(values)!.ToJsonString());
        return Schema.Evaluate(document.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
    }

    private static string Errors(EvaluationResults results) => string.Join("; ",
        (results.Details ?? []).Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")));

    [Fact]
    public void Default_values_validate_against_the_schema()
    {
        var results = Validate(Chart.DefaultValues);
        Assert.True(results.IsValid, Errors(results));
    }

    [Theory]
    [InlineData("os: macos", "/os")]
    [InlineData("ports: {client: 0, management: 8081}", "/ports/client")]
    [InlineData("config: {upstreams: []}", "/config/upstreams")]
    [InlineData("config: {upstreams: [\"ftp://imds\"]}", "/config/upstreams/0")]
    [InlineData("config: {cache: {refreshAfter: 1.5}}", "/config/cache/refreshAfter")]
    [InlineData("config: {resilience: {attemptTimeout: 3s}}", "/config/resilience/attemptTimeout")]
    [InlineData("config: {clients: [{name: app, address: 10.0.0.4}]}", "/config/clients/0")]
    [InlineData("image: {windowsVersion: ltsc2019}", "/image/windowsVersion")]
    [InlineData("hostPort: {enabled: \"yes\"}", "/hostPort/enabled")]
    [InlineData("unknownTopLevel: 1", "/unknownTopLevel")]
    [InlineData("adminApi: {apiKeyy: x}", "/adminApi/apiKeyy")]
    [InlineData("linux: {redirect: {enabled: true}}", "/linux/redirect")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], podSelectr: {}}]}", "/kubernetes/bindings/0/podSelectr")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: []}]}", "/kubernetes/bindings/0/identities")]
    [InlineData("kubernetes: {bindings: [{namespace: a, identities: [system]}]}", "/kubernetes/bindings/0")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], podSelector: {matchLabels: {app: 1}}}]}", "/kubernetes/bindings/0/podSelector/matchLabels/app")]
    [InlineData("kubernetes: {dnat: {enabled: true}}", "/kubernetes/dnat/interface")]
    [InlineData("kubernetes: {dnat: {enabled: true, interface: \"azv+ -j ACCEPT\"}}", "/kubernetes/dnat/interface")]
    [InlineData("kubernetes: {dnat: {enabled: true, sourceCidr: 10.244.0.0}}", "/kubernetes/dnat/sourceCidr")]
    [InlineData("kubernetes: {dnat: {enabled: true, interface: cni+, command: nft}}", "/kubernetes/dnat/command")]
    [InlineData("kubernetes: {enabled: false, dnat: {enabled: true, interface: cni+}}", "/kubernetes/enabled")]
    [InlineData("{os: windows, kubernetes: {dnat: {enabled: true, interface: cni+}}}", "/kubernetes/dnat/enabled")]
    [InlineData("terminationGracePeriodSeconds: 5", "/terminationGracePeriodSeconds")]
    public void A_bad_value_fails_the_schema_at_its_location(string overrideYaml, string location)
    {
        var values = YamlValues.Merge(Chart.DefaultValues, YamlValues.Parse(overrideYaml));
        var results = Validate(values);
        Assert.False(results.IsValid);
        Assert.Contains(results.Details!, d => d.Errors is not null && d.InstanceLocation.ToString() == location);
    }

    [Fact]
    public void Windows_host_process_values_validate()
    {
        var values = YamlValues.Merge(Chart.DefaultValues, YamlValues.Parse(WindowsHostProcessValues));
        var results = Validate(values);
        Assert.True(results.IsValid, Errors(results));
    }

    [Fact]
    public void Linux_dnat_values_validate()
    {
        var values = YamlValues.Merge(Chart.DefaultValues, YamlValues.Parse(LinuxDnatValues));
        var results = Validate(values);
        Assert.True(results.IsValid, Errors(results));
    }

    /// <summary>The worked example of docs/kubernetes.md: two namespaces, the transparent path on Azure CNI.</summary>
    internal const string LinuxDnatValues = """
        kubernetes:
          bindings:
            - namespace: team-a
              serviceAccount: api
              identities: ["client_id=1f0c2a4e-6b3d-4c8a-9e71-2d5b7a9c0e13"]
            - namespace: team-b
              serviceAccount: worker
              podSelector: {matchLabels: {app: worker, tier: "true"}}
              identities: ["client_id=7a9e1c3b-2d4f-4e60-8a1b-3c5d7e9f1a2b", system]
          dnat:
            enabled: true
            interface: azv+
            sourceCidr: 10.244.0.0/16
        """;

    internal const string WindowsHostProcessValues = """
        os: windows
        image: {windowsVersion: ltsc2025}
        windows: {hostProcess: {enabled: true}}
        kubernetes: {enabled: false}
        adminApi: {enabled: true, apiKey: s3cret}
        config:
          upstreams: ["http://169.254.169.254", "http://172.21.198.80:80"]
          clients:
            - {name: app1, address: 172.21.198.0/24, identities: ["client_id=11111111-2222-3333-4444-555555555555", system], prefetch: ["https://vault.azure.net"]}
        """;

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z0-9_]+)+)")]
    private static partial Regex ValuesReference();

    [Fact]
    public void Every_Values_reference_in_templates_exists_in_values_yaml_and_in_the_schema()
    {
        var references = Chart.TemplateFiles
            .SelectMany(f => ValuesReference().Matches(File.ReadAllText(f)).Select(m => m.Groups[1].Value.TrimStart('.')))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        Assert.True(references.Count > 40, $"expected the templates to use many values, found {references.Count}");

        var missing = new List<string>();
        foreach (var reference in references)
        {
            try
            {
                _ = YamlValues.At(Chart.DefaultValues, reference);
            }
            catch (KeyNotFoundException)
            {
                missing.Add("values.yaml: " + reference);
            }

            JsonNode? node = SchemaJson;
            foreach (var part in reference.Split('.'))
            {
                node = node?["properties"]?[part];
            }

            if (node is null)
            {
                missing.Add("values.schema.json: " + reference);
            }
        }

        Assert.Empty(missing);
    }

    [Fact]
    public void Every_schema_property_has_a_description_or_a_closed_set_of_values()
    {
        var undocumented = new List<string>();
        void Walk(JsonNode? node, string path)
        {
            if (node?["properties"] is not JsonObject properties)
            {
                return;
            }

            foreach (var (name, child) in properties)
            {
                var childPath = path.Length == 0 ? name : path + "." + name;
                var isObject = child?["properties"] is not null;
                if (!isObject && child?["description"] is null && child?["enum"] is null && child?["pattern"] is null)
                {
                    undocumented.Add(childPath);
                }

                Walk(child, childPath);
            }
        }

        Walk(SchemaJson, "");
        Assert.Empty(undocumented);
    }
}
