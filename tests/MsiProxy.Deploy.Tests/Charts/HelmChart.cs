using System.Text.Json;
using System.Text.RegularExpressions;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// charts/msi-proxy as real helm renders it (release "test" in namespace "msi"). A render takes a mode — "default"
/// (values.yaml alone) or the name of one of the chart's ci/&lt;mode&gt;-values.yaml files, one per documented way to
/// run it — plus optional override YAML, and is parsed as YAML.
/// </summary>
internal sealed class HelmChart
{
    public const string Release = "test";
    public const string Namespace = "msi";
    public const string Default = "default";

    /// <summary>The Prometheus Operator's API: the monitors render only where a cluster has it.</summary>
    public const string MonitoringApi = "monitoring.coreos.com/v1";

    public static HelmChart MsiProxy { get; } = new(RepositoryPaths.Combine("charts", "msi-proxy"));

    private HelmChart(string directory) => Directory = directory;

    public string Directory { get; }

    public string FullName => $"{Release}-msi-proxy";

    /// <summary>"default" and every ci/*-values.yaml mode.</summary>
    public IReadOnlyList<string> Modes =>
    [
        Default,
        .. System.IO.Directory.GetFiles(Path.Combine(Directory, "ci"), "*-values.yaml")
            .Select(f => Path.GetFileName(f)[..^"-values.yaml".Length])
            .Order(StringComparer.Ordinal),
    ];

    public object? DefaultValues => YamlValues.Parse(File.ReadAllText(Path.Combine(Directory, "values.yaml")));

    /// <summary><c>helm template</c>; fails the test when helm fails.</summary>
    public ChartRender Render(string mode = Default, string overrides = "", string? apiVersions = null, bool validateSchema = true) =>
        new(TryRender(mode, overrides, apiVersions, validateSchema).EnsureSuccess().Output);

    /// <summary><c>helm template</c>, whatever its outcome (bad values must fail it).</summary>
    /// <param name="apiVersions">Extra APIs the cluster is said to have, comma-separated.</param>
    /// <param name="validateSchema">False renders what values.schema.json would refuse (to show what else stops it).</param>
    public HelmResult TryRender(string mode = Default, string overrides = "", string? apiVersions = null, bool validateSchema = true) =>
        WithValues(mode, overrides, files => Helm.Run(
        [
            "template", Release, Directory, "--namespace", Namespace, .. files,
            .. apiVersions is null ? [] : new[] { "--api-versions", apiVersions },
            .. validateSchema ? [] : new[] { "--skip-schema-validation" },
        ]));

    /// <summary><c>helm lint --strict</c> (the schema, the templates, Chart.yaml).</summary>
    public HelmResult Lint(string mode = Default, string overrides = "") =>
        WithValues(mode, overrides, files => Helm.Run(["lint", "--strict", Directory, "--namespace", Namespace, .. files]));

    /// <summary>What <c>helm install</c> prints after installing (NOTES.txt), from a client-only dry run.</summary>
    public string Notes(string mode = Default, string overrides = "") =>
        WithValues(mode, overrides, files =>
        {
            var result = Helm.Run(["install", Release, Directory, "--namespace", Namespace, "--dry-run=client", "--output", "json", .. files]).EnsureSuccess();
            using var release = JsonDocument.Parse(result.Output);
            return release.RootElement.GetProperty("info").GetProperty("notes").GetString()!;
        });

    private T WithValues<T>(string mode, string overrides, Func<string[], T> run)
    {
        var files = new List<string>();
        if (mode != Default)
        {
            var file = Path.Combine(Directory, "ci", mode + "-values.yaml");
            Assert.True(File.Exists(file), $"no values file for mode '{mode}'");
            files.AddRange(["--values", file]);
        }

        var overrideFile = overrides.Length == 0 ? null : Path.GetTempFileName();
        try
        {
            if (overrideFile is not null)
            {
                File.WriteAllText(overrideFile, overrides);
                files.AddRange(["--values", overrideFile]);
            }

            return run([.. files]);
        }
        finally
        {
            if (overrideFile is not null)
            {
                File.Delete(overrideFile);
            }
        }
    }
}

/// <summary>The objects of one render: what <c>helm install</c> applies, and the <c>helm test</c> hook pods.</summary>
internal sealed partial class ChartRender(string output)
{
    /// <summary>Each object's own YAML document, as helm printed it.</summary>
    public IReadOnlyList<string> Documents { get; } = DocumentSeparator().Split(output).Where(d => YamlValues.Parse(d) is not null).ToList();

    public IReadOnlyList<IDictionary<string, object?>> All => field ??= Documents.Select(d => (IDictionary<string, object?>)YamlValues.Parse(d)!).ToList();

    public IReadOnlyList<IDictionary<string, object?>> Manifests => All.Where(o => Hook(o) is null).ToList();

    public IReadOnlyList<IDictionary<string, object?>> TestPods => All.Where(o => Hook(o) == "test").ToList();

    public IEnumerable<string> Kinds => Manifests.Select(m => (string)m["kind"]!);

    public IDictionary<string, object?> Single(string kind, string? name = null) =>
        Assert.Single(Manifests, m => (string?)m["kind"] == kind && (name is null || (string?)YamlValues.At(m, "metadata.name") == name));

    public IDictionary<string, object?> TestPod(string name) =>
        Assert.Single(TestPods, m => (string?)YamlValues.At(m, "metadata.name") == name);

    private static string? Hook(IDictionary<string, object?> o) =>
        YamlValues.At(o, "metadata") is IDictionary<string, object?> metadata
        && metadata.TryGetValue("annotations", out var annotations) && annotations is IDictionary<string, object?> a
        && a.TryGetValue("helm.sh/hook", out var hook) ? (string?)hook : null;

    [GeneratedRegex(@"^---\s*$", RegexOptions.Multiline)]
    private static partial Regex DocumentSeparator();
}
