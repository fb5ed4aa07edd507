using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// values.yaml, values.schema.json and the templates agree, and helm refuses a bad values file (it checks the schema on
/// template, lint and install) with a message naming the value.
/// </summary>
public partial class ChartValuesTests
{
    private static readonly HelmChart Chart = HelmChart.MsiProxy;

    private static readonly JsonNode Schema = JsonNode.Parse(File.ReadAllText(Path.Combine(Chart.Directory, "values.schema.json")))!;

    [Theory]
    [InlineData("os: macos", "at '/os': value must be one of 'linux', 'windows'")]
    [InlineData("ports: {client: 0, management: 8081}", "at '/ports/client': minimum")]
    [InlineData("upstreams: []", "at '/upstreams': minItems")]
    [InlineData("upstreams: [\"ftp://imds\"]", "at '/upstreams/0'")]
    [InlineData("clients: [{name: app, address: 10.0.0.4}]", "at '/clients/0': missing property 'identities'")]
    [InlineData("image: {windowsVersion: ltsc2019}", "at '/image/windowsVersion'")]
    [InlineData("hostPort: {enabled: \"yes\"}", "at '/hostPort/enabled': got string, want boolean")]
    [InlineData("unknownTopLevel: 1", "additional properties 'unknownTopLevel' not allowed")]
    [InlineData("adminApi: {apiKeyy: x}", "at '/adminApi': additional properties 'apiKeyy' not allowed")]
    [InlineData("adminApi: {enabled: true, apiKey: short}", "at '/adminApi/apiKey': minLength")]
    [InlineData("config: {MsiProxy: 5}", "at '/config/MsiProxy': got number, want object")]
    [InlineData("config: {\"Msi Proxy\": {}}", "invalid propertyName 'Msi Proxy'")]
    [InlineData("linux: {redirect: {enabled: true}}", "at '/linux': additional properties 'redirect' not allowed")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], podSelectr: {}}]}", "at '/kubernetes/bindings/0': additional properties 'podSelectr'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: []}]}", "at '/kubernetes/bindings/0/identities': minItems")]
    [InlineData("kubernetes: {bindings: [{namespace: a, identities: [system]}]}", "at '/kubernetes/bindings/0': missing property 'serviceAccount'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], podSelector: {matchLabels: {app: 1}}}]}", "at '/kubernetes/bindings/0/podSelector/matchLabels/app'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], proof: header}]}", "at '/kubernetes/bindings/0/proof': value must be one of 'address', 'address+secret', 'secret'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], proof: secret}]}", "at '/kubernetes/bindings/0': missing property 'identityHeaderSecret'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], identityHeaderSecret: {name: s, key: k}}]}", "at '/kubernetes/bindings/0': missing property 'proof'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], proof: address, identityHeaderSecret: {name: s, key: k}}]}", "at '/kubernetes/bindings/0/proof': value must be one of 'address+secret', 'secret'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: s}}]}", "at '/kubernetes/bindings/0/identityHeaderSecret': missing property 'key'")]
    [InlineData("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], proof: secret, identityHeaderSecret: {name: App_Id, key: k}}]}", "at '/kubernetes/bindings/0/identityHeaderSecret/name'")]
    [InlineData("kubernetes: {identityHeaderSecrets: [{namespace: a}]}", "at '/kubernetes/identityHeaderSecrets/0': missing property 'name'")]
    [InlineData("kubernetes: {identityHeaderSecrets: [{namespace: a, name: s, verbs: [list]}]}", "at '/kubernetes/identityHeaderSecrets/0': additional properties 'verbs' not allowed")]
    [InlineData("kubernetes: {dnat: {enabled: true}}", "at '/kubernetes/dnat/interface': minLength")]
    [InlineData("kubernetes: {dnat: {enabled: true, interface: \"azv+ -j ACCEPT\"}}", "at '/kubernetes/dnat/interface'")]
    [InlineData("kubernetes: {dnat: {enabled: true, sourceCidr: 10.244.0.0}}", "at '/kubernetes/dnat/sourceCidr'")]
    [InlineData("kubernetes: {dnat: {enabled: true, interface: cni+, command: nft}}", "at '/kubernetes/dnat/command'")]
    [InlineData("kubernetes: {enabled: false, dnat: {enabled: true, interface: cni+}}", "at '/kubernetes/enabled'")]
    [InlineData("{os: windows, kubernetes: {dnat: {enabled: true, interface: cni+}}}", "at '/kubernetes/dnat/enabled': value must be false")]
    [InlineData("{os: windows, kubernetes: {dnat: {uninstall: true}}}", "at '/kubernetes/dnat/uninstall': value must be false")]
    [InlineData("kubernetes: {dnat: {uninstall: \"yes\"}}", "at '/kubernetes/dnat/uninstall': got string, want boolean")]
    [InlineData("terminationGracePeriodSeconds: 5", "at '/terminationGracePeriodSeconds': minimum")]
    [InlineData("state: {volume: persistentVolumeClaim}", "at '/state/volume': value must be one of 'emptyDir', 'hostPath'")]
    [InlineData("state: {volume: hostPath, path: /x}", "at '/state': additional properties 'path' not allowed")]
    [InlineData("tests: {image: {tag: \"\"}}", "at '/tests/image/tag': minLength")]
    public void Helm_refuses_a_bad_value_naming_where_it_is(string overrides, string message)
    {
        var result = Chart.TryRender(overrides: overrides);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("values don't meet the specifications of the schema", result.Errors, StringComparison.Ordinal);
        Assert.Contains(message, result.Errors, StringComparison.Ordinal);
        Assert.NotEqual(0, Chart.Lint(overrides: overrides).ExitCode);
    }

    [GeneratedRegex(@"\.Values((?:\.[A-Za-z0-9_]+)+)")]
    private static partial Regex ValuesReference();

    [Fact]
    public void Every_Values_reference_in_templates_exists_in_values_yaml_and_in_the_schema()
    {
        var references = Directory.GetFiles(Path.Combine(Chart.Directory, "templates"), "*", SearchOption.AllDirectories)
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

            if (SchemaAt(reference) is null)
            {
                missing.Add("values.schema.json: " + reference);
            }
        }

        Assert.Empty(missing);
    }

    [Fact]
    public void Values_yaml_and_the_schema_describe_the_same_keys()
    {
        // Down to the maps whose keys are the user's (labels, config, resources...): the schema has no properties there.
        static IEnumerable<string> ValueKeys(object? value, string path, JsonNode? schema) =>
            value is IDictionary<string, object?> map && schema?["properties"] is JsonObject
                ? map.SelectMany(p => ValueKeys(p.Value, Join(path, p.Key), schema["properties"]?[p.Key]).Prepend(Join(path, p.Key)))
                : [];

        static IEnumerable<string> SchemaKeys(JsonNode? schema, string path, object? value) =>
            schema?["properties"] is JsonObject properties && value is IDictionary<string, object?> map
                ? properties.SelectMany(p => SchemaKeys(p.Value, Join(path, p.Key), map.TryGetValue(p.Key, out var v) ? v : null).Prepend(Join(path, p.Key)))
                : [];

        var values = ValueKeys(Chart.DefaultValues, "", Schema).ToHashSet(StringComparer.Ordinal);
        var schema = SchemaKeys(Schema, "", Chart.DefaultValues).ToHashSet(StringComparer.Ordinal);
        // config's MsiProxy and Serilog are documented in the schema but empty by default: every key there is optional.
        schema.ExceptWith(["config.MsiProxy", "config.Serilog"]);
        Assert.Empty(values.Except(schema).Select(k => "only in values.yaml: " + k).Concat(schema.Except(values).Select(k => "only in the schema: " + k)));
        Assert.True(values.Count > 60, $"expected many keys, found {values.Count}");
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
                var childPath = Join(path, name);
                var isObject = child?["properties"] is not null;
                if (!isObject && child?["description"] is null && child?["enum"] is null && child?["pattern"] is null)
                {
                    undocumented.Add(childPath);
                }

                Walk(child, childPath);
            }
        }

        Walk(Schema, "");
        Assert.Empty(undocumented);
    }

    [Fact]
    public void Chart_yaml_names_no_placeholder_home_or_source()
    {
        // helm lint checks that sources are URLs, not that they lead anywhere: "https://github.com/" passed it.
        var chart = (IDictionary<string, object?>)YamlValues.Parse(File.ReadAllText(Path.Combine(Chart.Directory, "Chart.yaml")))!;
        var links = (chart.TryGetValue("sources", out var sources) ? ((List<object?>)sources!).Cast<string>() : [])
            .Concat(chart.TryGetValue("home", out var home) ? [(string)home!] : []);
        Assert.All(links, link => Assert.True(
            Uri.TryCreate(link, UriKind.Absolute, out var uri) && uri.Scheme == "https" && uri.AbsolutePath.Trim('/').Contains('/', StringComparison.Ordinal),
            $"'{link}' is not the https address of a page or repository"));
    }

    private static JsonNode? SchemaAt(string path)
    {
        JsonNode? node = Schema;
        foreach (var part in path.Split('.'))
        {
            node = node?["properties"]?[part];
        }

        return node;
    }

    private static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;
}
