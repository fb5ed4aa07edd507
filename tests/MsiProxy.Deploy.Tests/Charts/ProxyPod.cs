using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using MsiProxy.Configuration;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// The proxy pod of a render, seen as the kubelet would start it on a node: the environment (envFrom ConfigMaps first,
/// then <c>env</c> in order, with <c>$(VAR)</c> expanded from variables defined before it, downward-API fields filled in)
/// and the files of mounted ConfigMaps. From that, the configuration the proxy reads, as ASP.NET Core's environment
/// variable provider maps it (<c>A__B</c> → <c>A:B</c>, <c>ASPNETCORE_URLS</c> → <c>urls</c>).
/// </summary>
internal sealed partial class ProxyPod
{
    public const string NodeName = "aks-nodepool1-0";
    public const string NodeIp = "10.224.0.4";

    private static readonly Dictionary<string, string> DownwardApi = new(StringComparer.Ordinal)
    {
        ["spec.nodeName"] = NodeName,
        ["status.hostIP"] = NodeIp,
    };

    public ProxyPod(List<IDictionary<string, object?>> manifests)
    {
        DaemonSet = Assert.Single(manifests, m => (string?)m["kind"] == "DaemonSet");
        Spec = (IDictionary<string, object?>)YamlValues.At(DaemonSet, "spec.template.spec")!;
        Container = (IDictionary<string, object?>)Assert.Single((List<object?>)Spec["containers"]!)!;
        var configMaps = manifests.Where(m => (string?)m["kind"] == "ConfigMap")
            .ToDictionary(m => (string)YamlValues.At(m, "metadata.name")!, m => (IDictionary<string, object?>?)m["data"] ?? new Dictionary<string, object?>());

        foreach (var source in List(Container, "envFrom"))
        {
            var name = (string)YamlValues.At(source, "configMapRef.name")!;
            foreach (var (key, value) in configMaps[name])
            {
                Environment[key] = Assert.IsType<string>(value);
            }
        }

        foreach (var variable in List(Container, "env"))
        {
            var name = (string)variable["name"]!;
            Environment[name] = variable.TryGetValue("value", out var value)
                ? Expand(Assert.IsType<string>(value))
                : DownwardApi[(string)YamlValues.At(variable, "valueFrom.fieldRef.fieldPath")!];
        }

        var volumes = List(Spec, "volumes").ToDictionary(v => (string)v["name"]!);
        foreach (var mount in List(Container, "volumeMounts"))
        {
            var volume = volumes[(string)mount["name"]!];
            Mounts[(string)mount["mountPath"]!] = volume;
            if (volume.TryGetValue("configMap", out var configMap))
            {
                Assert.False(mount.ContainsKey("subPath"), "a subPath mount of a ConfigMap never sees updates");
                foreach (var (key, value) in configMaps[(string)YamlValues.At(configMap, "name")!])
                {
                    Files[(string)mount["mountPath"]! + "/" + key] = (string)value!;
                }
            }
        }
    }

    public IDictionary<string, object?> DaemonSet { get; }

    public IDictionary<string, object?> Spec { get; }

    public IDictionary<string, object?> Container { get; }

    /// <summary>The container's environment as the process sees it.</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>Mount path → volume.</summary>
    public Dictionary<string, IDictionary<string, object?>> Mounts { get; } = new(StringComparer.Ordinal);

    /// <summary>Path → content of every file a mounted ConfigMap puts in the container.</summary>
    public Dictionary<string, string> Files { get; } = new(StringComparer.Ordinal);

    public IConfiguration Configuration => new ConfigurationBuilder()
        .AddInMemoryCollection(Environment.Select(e => KeyValuePair.Create(
            e.Key.StartsWith("ASPNETCORE_", StringComparison.Ordinal) ? e.Key["ASPNETCORE_".Length..] : e.Key.Replace("__", ":", StringComparison.Ordinal),
            (string?)e.Value)))
        .Build();

    /// <summary>The options the proxy binds, with <c>NodeName</c> defaulted from NODE_NAME as the proxy does.</summary>
    public MsiProxyOptions Options
    {
        get
        {
            var options = new MsiProxyOptions();
            Configuration.GetSection(MsiProxyOptions.SectionName).Bind(options);
            if (string.IsNullOrWhiteSpace(options.Kubernetes.NodeName) && Environment.TryGetValue("NODE_NAME", out var node))
            {
                options.Kubernetes.NodeName = node;
            }

            return options;
        }
    }

    public IReadOnlyList<string> CapabilitiesAdded =>
        Container.TryGetValue("securityContext", out var context) && context is IDictionary<string, object?> security
            && security.TryGetValue("capabilities", out var capabilities) && capabilities is IDictionary<string, object?> caps
            && caps.TryGetValue("add", out var add) && add is List<object?> added
            ? [.. added.Cast<string>()]
            : [];

    private static IEnumerable<IDictionary<string, object?>> List(IDictionary<string, object?> map, string key) =>
        map.TryGetValue(key, out var list) && list is List<object?> items ? items.Cast<IDictionary<string, object?>>() : [];

    // Kubernetes: $(VAR) names a variable defined earlier; $$ escapes; an unknown reference stays as written.
    private string Expand(string value) => Reference().Replace(value, m => m.Value == "$$"
        ? "$"
        : Environment.TryGetValue(m.Groups[1].Value, out var defined) ? defined : m.Value);

    [GeneratedRegex(@"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex Reference();
}
