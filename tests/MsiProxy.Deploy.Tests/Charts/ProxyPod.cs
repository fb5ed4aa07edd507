using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using MsiProxy.Configuration;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// The proxy pod of a render, seen as the kubelet would start it on a node: the environment (<c>env</c> in order, with
/// <c>$(VAR)</c> expanded from variables defined before it, downward-API fields filled in) and the files of the
/// mounted ConfigMaps and Secrets. From that, the configuration the proxy reads as ASP.NET Core builds it:
/// <c>appsettings.json</c> of the content root (<c>ASPNETCORE_CONTENTROOT</c>), then the environment
/// (<c>A__B</c> → <c>A:B</c>, <c>ASPNETCORE_URLS</c> → <c>urls</c>), which wins.
/// </summary>
internal sealed partial class ProxyPod
{
    public const string NodeName = "aks-nodepool1-0";
    public const string NodeIp = "10.224.0.4";

    /// <summary>Where the chart mounts everything the proxy reads.</summary>
    public const string MountRoot = "/etc/msi-proxy/";

    /// <summary>Where the chart mounts the state volume on Linux (the one place the proxy writes).</summary>
    public const string StateDirectory = "/var/lib/msi-proxy";

    private static readonly Dictionary<string, string> DownwardApi = new(StringComparer.Ordinal)
    {
        ["spec.nodeName"] = NodeName,
        ["status.hostIP"] = NodeIp,
    };

    public ProxyPod(ChartRender render)
    {
        DaemonSet = render.Single("DaemonSet");
        Spec = (IDictionary<string, object?>)YamlValues.At(DaemonSet, "spec.template.spec")!;
        Container = (IDictionary<string, object?>)Assert.Single((List<object?>)Spec["containers"]!)!;
        Assert.False(Container.ContainsKey("envFrom"), "the configuration is appsettings.json, not environment variables from a ConfigMap");

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
            var mountPath = (string)mount["mountPath"]!;
            var volume = volumes[(string)mount["name"]!];
            Mounts[mountPath] = volume;
            if (volume.TryGetValue("configMap", out var configMap))
            {
                Assert.False(mount.ContainsKey("subPath"), "a subPath mount of a ConfigMap never sees updates");
                foreach (var (key, content) in YamlValues.Map(render.Single("ConfigMap", (string)YamlValues.At(configMap, "name")!), "data"))
                {
                    Files[mountPath + "/" + key] = (string)content!;
                }
            }
            else if (volume.TryGetValue("secret", out var secret))
            {
                var secretName = (string)YamlValues.At(secret, "secretName")!;
                var rendered = render.Manifests.SingleOrDefault(m => (string?)m["kind"] == "Secret" && (string?)YamlValues.At(m, "metadata.name") == secretName);
                foreach (var item in List((IDictionary<string, object?>)secret!, "items"))
                {
                    var path = mountPath + "/" + (string)item["path"]!;
                    if (rendered is null)
                    {
                        ExternalFiles.Add(path);
                    }
                    else
                    {
                        Files[path] = Encoding.UTF8.GetString(Convert.FromBase64String((string)YamlValues.Map(rendered, "data")[(string)item["key"]!]!));
                    }
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

    /// <summary>Path → content of every file a mounted ConfigMap or chart-made Secret puts in the container.</summary>
    public Dictionary<string, string> Files { get; } = new(StringComparer.Ordinal);

    /// <summary>Files a Secret the chart does not make (<c>adminApi.existingSecret</c>) puts in the container.</summary>
    public List<string> ExternalFiles { get; } = [];

    /// <summary>The appsettings.json the proxy reads: the one in its content root.</summary>
    public string AppSettings => Files[Environment["ASPNETCORE_CONTENTROOT"] + "/appsettings.json"];

    public IConfiguration Configuration => Build(AppSettings, Environment);

    /// <summary>The options the proxy binds, with <c>NodeName</c> defaulted from NODE_NAME as the proxy does.</summary>
    public MsiProxyOptions Options => Bind(Configuration, Environment);

    public IReadOnlyList<string> CapabilitiesAdded =>
        Container.TryGetValue("securityContext", out var context) && context is IDictionary<string, object?> security
            && security.TryGetValue("capabilities", out var capabilities) && capabilities is IDictionary<string, object?> caps
            && caps.TryGetValue("add", out var add) && add is List<object?> added
            ? [.. added.Cast<string>()]
            : [];

    /// <summary>
    /// The pod's files written under <paramref name="root"/> (root + mount path, a stand-in key for each file of an
    /// existing Secret), with every path under <see cref="MountRoot"/> and <see cref="StateDirectory"/> that the
    /// environment and appsettings.json name moved there too: the pod as a process on this machine would see it, for the
    /// proxy's own checks and start-up — and a proxy started from it writes its state file there, not to this machine's
    /// /var/lib.
    /// </summary>
    public LaidOutPod LayOut(string root)
    {
        string Moved(string text) => text.Replace(MountRoot, root + MountRoot, StringComparison.Ordinal)
            .Replace(StateDirectory + "/", root + StateDirectory + "/", StringComparison.Ordinal);
        if (Mounts.ContainsKey(StateDirectory))
        {
            Directory.CreateDirectory(root + StateDirectory);
        }

        foreach (var (path, content) in Files.Concat(ExternalFiles.Select(f => KeyValuePair.Create(f, "a-key-from-an-existing-secret"))))
        {
            Assert.StartsWith(MountRoot, path, StringComparison.Ordinal);
            var file = root + path;
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, Moved(content));
        }

        var environment = Environment.ToDictionary(e => e.Key, e => Moved(e.Value), StringComparer.Ordinal);
        var configuration = Build(File.ReadAllText(environment["ASPNETCORE_CONTENTROOT"] + "/appsettings.json"), environment);
        return new LaidOutPod(environment, Bind(configuration, environment));
    }

    private static IConfiguration Build(string appSettings, Dictionary<string, string> environment) => new ConfigurationBuilder()
        .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(appSettings)))
        .AddInMemoryCollection(environment.Select(e => KeyValuePair.Create(
            e.Key.StartsWith("ASPNETCORE_", StringComparison.Ordinal) ? e.Key["ASPNETCORE_".Length..] : e.Key.Replace("__", ":", StringComparison.Ordinal),
            (string?)e.Value)))
        .Build();

    private static MsiProxyOptions Bind(IConfiguration configuration, Dictionary<string, string> environment)
    {
        var options = new MsiProxyOptions();
        // As the proxy binds it: the clients (MsiProxy__Clients__N__… in the pod's environment) through the one-pass reader.
        ClientsConfiguration.Bind(configuration, configuration.GetSection(MsiProxyOptions.SectionName), options);
        if (string.IsNullOrWhiteSpace(options.Kubernetes.NodeName) && environment.TryGetValue("NODE_NAME", out var node))
        {
            options.Kubernetes.NodeName = node;
        }

        return options;
    }

    private static IEnumerable<IDictionary<string, object?>> List(IDictionary<string, object?> map, string key) =>
        map.TryGetValue(key, out var list) && list is List<object?> items ? items.Cast<IDictionary<string, object?>>() : [];

    // Kubernetes: $(VAR) names a variable defined earlier; $$ escapes; an unknown reference stays as written.
    private string Expand(string value) => Reference().Replace(value, m => m.Value == "$$"
        ? "$"
        : Environment.TryGetValue(m.Groups[1].Value, out var defined) ? defined : m.Value);

    [GeneratedRegex(@"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")]
    private static partial Regex Reference();
}

/// <summary>A <see cref="ProxyPod"/> laid out on this machine's disk: its environment and options name real files.</summary>
internal sealed record LaidOutPod(Dictionary<string, string> Environment, MsiProxyOptions Options);
