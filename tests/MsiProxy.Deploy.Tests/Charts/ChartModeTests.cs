using MsiProxy.Configuration;
using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Kubernetes;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// What must hold in every documented mode (the chart's ci/*-values.yaml files and the defaults), checked on real
/// helm's render with the Prometheus Operator's API available, so that every template that can render does.
/// </summary>
public class ChartModeTests
{
    private static readonly HelmChart Chart = HelmChart.MsiProxy;

    public static TheoryData<string> Modes => [.. Chart.Modes];

    private static ChartRender Render(string mode) => Chart.Render(mode, apiVersions: HelmChart.MonitoringApi);

    [Fact]
    public void The_modes_cover_every_documented_way_to_run_the_chart()
    {
        Assert.Equal(
            ["config", "default", "dnat", "identity-header", "monitoring", "msiserviceclient", "sdk-path", "windows", "windows-hostprocess"],
            Chart.Modes.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Helm_lint_strict_passes(string mode)
    {
        var lint = Chart.Lint(mode);
        Assert.True(lint.ExitCode == 0, lint.Output + lint.Errors);
        Assert.Contains("0 chart(s) failed", lint.Output, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Every_object_fits_the_Kubernetes_API_types_strictly(string mode)
    {
        var render = Render(mode);
        foreach (var (document, parsed) in render.Documents.Zip(render.All))
        {
            var kind = $"{parsed["apiVersion"]}/{parsed["kind"]}";
            if (KubernetesObjects.CustomKinds.Contains(kind))
            {
                continue;
            }

            var read = KubernetesObjects.Read(document);
            Assert.Equal((string)parsed["kind"]!, read.Kind);
        }
    }

    [Fact]
    public void The_strict_read_fails_on_a_misspelt_field()
    {
        var daemonSet = Chart.Render().Documents.Single(d => d.Contains("kind: DaemonSet", StringComparison.Ordinal));
        var misspelt = daemonSet.Replace("terminationGracePeriodSeconds:", "terminationGracePeriodSecond:", StringComparison.Ordinal);
        Assert.NotEqual(daemonSet, misspelt);
        Assert.ThrowsAny<Exception>(() => KubernetesObjects.Read(misspelt));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Every_object_and_the_pod_template_carry_the_recommended_labels(string mode)
    {
        var render = Render(mode);
        var labelled = render.All.Select(o => (Where: $"{o["kind"]} {YamlValues.At(o, "metadata.name")}", Labels: YamlValues.At(o, "metadata.labels")))
            .Append(("DaemonSet pod template", YamlValues.At(render.Single("DaemonSet"), "spec.template.metadata.labels")));
        foreach (var (where, value) in labelled)
        {
            var labels = Assert.IsAssignableFrom<IDictionary<string, object?>>(value);
            Assert.True(labels.ContainsKey("app.kubernetes.io/name"), $"{where} has no name label");
            Assert.Equal("msi-proxy", labels["app.kubernetes.io/name"]);
            Assert.Equal(HelmChart.Release, labels["app.kubernetes.io/instance"]);
            Assert.Equal(YamlValues.At(ChartYaml, "appVersion"), labels["app.kubernetes.io/version"]);
            Assert.Equal("msi-proxy", labels["app.kubernetes.io/part-of"]);
            Assert.Equal("Helm", labels["app.kubernetes.io/managed-by"]);
            Assert.True(labels.ContainsKey("app.kubernetes.io/component"), $"{where} has no component label");
        }

        // The selector must stay what it was at install (a DaemonSet's selector is immutable): name and instance only.
        Assert.Equal(["app.kubernetes.io/instance", "app.kubernetes.io/name"],
            ((IDictionary<string, object?>)YamlValues.At(render.Single("DaemonSet"), "spec.selector.matchLabels")!).Keys.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Rbac_only_reads_pods_the_bindings_config_map_and_secrets_by_name(string mode)
    {
        var render = Render(mode);
        var rules = render.Manifests.Where(m => (string?)m["kind"] is "Role" or "ClusterRole")
            .SelectMany(m => ((List<object?>)m["rules"]!).Cast<IDictionary<string, object?>>())
            .ToList();
        var secretRules = rules.Count(r => Strings(r["resources"]) is ["secrets"]);
        Assert.Equal(render.Manifests.Any(IsBindingsConfigMap) ? 2 + secretRules : 0, rules.Count); // none without pod discovery
        foreach (var rule in rules)
        {
            Assert.Equal([""], Strings(rule["apiGroups"]));
            var resources = Strings(rule["resources"]);
            Assert.True(resources is ["pods"] or ["configmaps"] or ["secrets"], string.Join(",", resources));
            if (resources is ["secrets"])
            {
                // Never list or watch: either would read every Secret of the namespace.
                Assert.Equal(["get"], Strings(rule["verbs"]));
                Assert.NotEmpty(Strings(rule["resourceNames"]));
                continue;
            }

            Assert.Equal(["get", "list", "watch"], Strings(rule["verbs"]));
            if (resources is ["configmaps"])
            {
                Assert.Equal([$"{Chart.FullName}-bindings"], Strings(rule["resourceNames"]));
            }
        }
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void The_proxy_accepts_the_configuration_the_pod_gets(string mode)
    {
        // Laid out on disk: the validators check that the files the configuration names (admin key, bindings) exist.
        using var root = new TemporaryDirectory("msi-proxy-pod-");
        var options = new ProxyPod(Render(mode)).LayOut(root.Path).Options;
        var general = new MsiProxyOptionsValidator().Validate(null, options);
        Assert.True(general.Succeeded, general.FailureMessage);
        var kubernetes = new KubernetesOptionsValidator().Validate(null, options);
        Assert.True(kubernetes.Succeeded, kubernetes.FailureMessage);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Linux_containers_drop_every_capability_they_do_not_need_and_never_escalate(string mode)
    {
        var render = Render(mode);
        var pod = new ProxyPod(render);
        if ((string?)YamlValues.Map(pod.Spec, "nodeSelector")["kubernetes.io/os"] == "windows")
        {
            Assert.NotNull(YamlValues.At(pod.Spec, "securityContext.windowsOptions.runAsUserName"));
            return;
        }

        Assert.Equal(false, YamlValues.At(pod.Container, "securityContext.allowPrivilegeEscalation"));
        Assert.Equal(true, YamlValues.At(pod.Container, "securityContext.readOnlyRootFilesystem"));
        Assert.Equal(["ALL"], Strings(YamlValues.At(pod.Container, "securityContext.capabilities.drop")));
        Assert.True(pod.CapabilitiesAdded is [] or ["NET_ADMIN", "NET_RAW"], string.Join(",", pod.CapabilitiesAdded));
        Assert.Equal("RuntimeDefault", YamlValues.At(pod.Spec, "securityContext.seccompProfile.type"));
        Assert.Equal(true, YamlValues.At(pod.Spec, "securityContext.runAsNonRoot"));
        // Root only for the pod rules (iptables runs as a child process), and then only with NET_ADMIN/NET_RAW.
        var containerUser = YamlValues.Map(pod.Container, "securityContext").TryGetValue("runAsUser", out var user) ? user : null;
        Assert.Equal(pod.CapabilitiesAdded.Count == 0 ? null : 0L, containerUser);
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Helm_test_pods_are_unprivileged_linux_hooks_that_clean_up(string mode)
    {
        var render = Render(mode);
        Assert.NotEmpty(render.TestPods);
        foreach (var pod in render.TestPods)
        {
            Assert.Equal("Pod", pod["kind"]);
            Assert.Equal("before-hook-creation,hook-succeeded", YamlValues.Map(pod, "metadata.annotations")["helm.sh/hook-delete-policy"]);
            Assert.Equal("helm-test", YamlValues.Map(pod, "metadata.labels")["app.kubernetes.io/component"]);
            Assert.Equal("Never", YamlValues.At(pod, "spec.restartPolicy"));
            Assert.Equal("linux", YamlValues.Map(pod, "spec.nodeSelector")["kubernetes.io/os"]);
            Assert.Equal(false, YamlValues.At(pod, "spec.automountServiceAccountToken"));
            Assert.Equal(true, YamlValues.At(pod, "spec.securityContext.runAsNonRoot"));
            var container = (IDictionary<string, object?>)Assert.Single((List<object?>)YamlValues.At(pod, "spec.containers")!)!;
            Assert.Equal("busybox:1.37", container["image"]);
            Assert.Equal(false, YamlValues.At(container, "securityContext.allowPrivilegeEscalation"));
            Assert.Equal(["ALL"], Strings(YamlValues.At(container, "securityContext.capabilities.drop")));
        }
    }

    private static readonly object? ChartYaml = YamlValues.Parse(File.ReadAllText(Path.Combine(Chart.Directory, "Chart.yaml")));

    private static bool IsBindingsConfigMap(IDictionary<string, object?> manifest) =>
        (string?)manifest["kind"] == "ConfigMap" && ((string)YamlValues.At(manifest, "metadata.name")!).EndsWith("-bindings", StringComparison.Ordinal);

    private static List<string> Strings(object? list) => ((List<object?>)list!).Cast<string>().ToList();
}
