using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// What `helm template` does for this chart, with <see cref="GoTemplate"/>: merge values, build the render context,
/// render every template. The result is checked by parsing it as YAML.
/// </summary>
internal sealed class HelmChart(string chartDirectory)
{
    public string Directory { get; } = chartDirectory;

    public object? DefaultValues => YamlValues.Parse(File.ReadAllText(Path.Combine(Directory, "values.yaml")));

    public IEnumerable<string> TemplateFiles =>
        System.IO.Directory.GetFiles(Path.Combine(Directory, "templates")).Order(StringComparer.Ordinal);

    /// <summary>Renders all templates; returns file name → rendered text (NOTES.txt included).</summary>
    public Dictionary<string, string> Render(string overrideYaml = "", IEnumerable<string>? apiVersions = null, string releaseName = "test", string releaseNamespace = "msi")
    {
        var values = YamlValues.Merge(DefaultValues, YamlValues.Parse(overrideYaml) ?? new Dictionary<string, object?>());
        var chart = (IDictionary<string, object?>)YamlValues.Parse(File.ReadAllText(Path.Combine(Directory, "Chart.yaml")))!;
        var available = new HashSet<string>(apiVersions ?? ["v1", "apps/v1", "rbac.authorization.k8s.io/v1"], StringComparer.Ordinal);
        var context = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["Values"] = values,
            ["Chart"] = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["Name"] = chart["name"],
                ["Version"] = chart["version"],
                ["AppVersion"] = chart["appVersion"],
            },
            ["Release"] = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["Name"] = releaseName,
                ["Namespace"] = releaseNamespace,
                ["Service"] = "Helm",
            },
            ["Capabilities"] = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["APIVersions"] = new Dictionary<string, object?>(StringComparer.Ordinal)
                {
                    ["Has"] = (Func<IReadOnlyList<object?>, object?>)(args => available.Contains(GoTemplate.ToText(args[0]))),
                },
            },
        };

        var engine = new GoTemplate();
        var parsed = TemplateFiles.ToDictionary(f => Path.GetFileName(f), f => engine.Parse(File.ReadAllText(f), Path.GetFileName(f)));
        return parsed
            .Where(p => !p.Key.StartsWith('_'))
            .ToDictionary(p => p.Key, p => engine.Render(p.Value, context));
    }

    /// <summary>All Kubernetes objects of a render (NOTES.txt excluded).</summary>
    public static List<IDictionary<string, object?>> Manifests(Dictionary<string, string> rendered) =>
        rendered.Where(p => p.Key.EndsWith(".yaml", StringComparison.Ordinal))
            .SelectMany(p => YamlValues.ParseAll(p.Value))
            .Cast<IDictionary<string, object?>>()
            .ToList();
}
