using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>The chart rendered (as `helm template` would) with default and with Windows/HostProcess values.</summary>
public class ChartRenderTests
{
    private static readonly HelmChart Chart = new(RepositoryPaths.Combine("charts", "msi-proxy"));

    private static List<IDictionary<string, object?>> Render(string values = "", IEnumerable<string>? apiVersions = null) =>
        HelmChart.Manifests(Chart.Render(values, apiVersions));

    private static IDictionary<string, object?> Single(List<IDictionary<string, object?>> manifests, string kind, string? nameSuffix = null) =>
        Assert.Single(manifests, m => (string?)m["kind"] == kind
            && (nameSuffix is null || ((string)YamlValues.At(m, "metadata.name")!).EndsWith(nameSuffix, StringComparison.Ordinal)));

    private static IDictionary<string, object?> ProxyContainer(IDictionary<string, object?> daemonSet) =>
        (IDictionary<string, object?>)Assert.Single((List<object?>)YamlValues.At(daemonSet, "spec.template.spec.containers")!)!;

    [Fact]
    public void Default_render_has_the_expected_kinds_and_no_monitoring_objects()
    {
        var kinds = Render().Select(m => (string)m["kind"]!).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(
            ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "ConfigMap", "DaemonSet", "Role", "RoleBinding", "Service", "ServiceAccount"],
            kinds);
    }

    [Fact]
    public void Probes_hit_health_endpoints_on_the_management_port_only()
    {
        foreach (var values in new[] { "", ChartValuesTests.WindowsHostProcessValues })
        {
            var container = ProxyContainer(Single(Render(values), "DaemonSet"));
            Assert.Equal("/healthz", YamlValues.At(container, "livenessProbe.httpGet.path"));
            Assert.Equal("/readyz", YamlValues.At(container, "readinessProbe.httpGet.path"));
            Assert.Equal("management", YamlValues.At(container, "livenessProbe.httpGet.port"));
            Assert.Equal("management", YamlValues.At(container, "readinessProbe.httpGet.port"));
            var ports = ((List<object?>)container["ports"]!).Cast<IDictionary<string, object?>>().ToDictionary(p => (string)p["name"]!, p => p["containerPort"]);
            Assert.Equal(8081L, ports["management"]);
            Assert.Equal(8080L, ports["client"]);
        }
    }

    [Fact]
    public void Linux_default_runs_non_root_on_linux_nodes_with_node_name_from_the_downward_api()
    {
        var daemonSet = Single(Render(), "DaemonSet");
        var nodeSelector = (IDictionary<string, object?>)YamlValues.At(daemonSet, "spec.template.spec.nodeSelector")!;
        Assert.Equal("linux", nodeSelector["kubernetes.io/os"]);
        Assert.Equal(true, YamlValues.At(daemonSet, "spec.template.spec.securityContext.runAsNonRoot"));
        Assert.Equal(1654L, YamlValues.At(daemonSet, "spec.template.spec.securityContext.runAsUser"));
        var container = ProxyContainer(daemonSet);
        Assert.Equal(false, YamlValues.At(container, "securityContext.allowPrivilegeEscalation"));
        var env = ((List<object?>)container["env"]!).Cast<IDictionary<string, object?>>().ToList();
        var nodeName = Assert.Single(env, e => (string?)e["name"] == "NODE_NAME");
        Assert.Equal("spec.nodeName", YamlValues.At(nodeName, "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("msi-proxy:0.1.0", container["image"]);
        Assert.False(((IDictionary<string, object?>)YamlValues.At(daemonSet, "spec.template.spec")!).ContainsKey("hostNetwork"));
    }

    [Fact]
    public void Windows_host_process_render_uses_host_network_windows_nodes_and_the_per_build_tag()
    {
        var manifests = Render(ChartValuesTests.WindowsHostProcessValues);
        var daemonSet = Single(manifests, "DaemonSet");
        var spec = (IDictionary<string, object?>)YamlValues.At(daemonSet, "spec.template.spec")!;
        Assert.Equal(true, spec["hostNetwork"]);
        Assert.Equal("windows", ((IDictionary<string, object?>)spec["nodeSelector"]!)["kubernetes.io/os"]);
        Assert.Equal(true, YamlValues.At(spec, "securityContext.windowsOptions.hostProcess"));
        Assert.Equal("NT AUTHORITY\\SYSTEM", YamlValues.At(spec, "securityContext.windowsOptions.runAsUserName"));
        var container = ProxyContainer(daemonSet);
        Assert.Equal("msi-proxy:0.1.0-ltsc2025", container["image"]);
        Assert.DoesNotContain(manifests, m => (string?)m["kind"] is "ClusterRole" or "Role");

        // The admin key arrives as a file from a chart-made Secret, never as a literal in the ConfigMap.
        var secret = Single(manifests, "Secret");
        Assert.Equal(Convert.ToBase64String("s3cret"u8.ToArray()), YamlValues.At(secret, "data.api-key"));
        var config = (IDictionary<string, object?>)Single(manifests, "ConfigMap")["data"]!;
        Assert.DoesNotContain(config.Values, v => v?.ToString()?.Contains("s3cret", StringComparison.Ordinal) == true);
        Assert.Equal("/etc/msi-proxy/admin/api-key", config["MsiProxy__Management__ApiKeyFile"]);
    }

    [Fact]
    public void Windows_without_host_process_runs_as_container_user()
    {
        var spec = (IDictionary<string, object?>)YamlValues.At(Single(Render("os: windows"), "DaemonSet"), "spec.template.spec")!;
        Assert.Equal("ContainerUser", YamlValues.At(spec, "securityContext.windowsOptions.runAsUserName"));
        Assert.False(spec.ContainsKey("hostNetwork"));
    }

    [Fact]
    public void Configuration_is_rendered_as_contract_environment_variables()
    {
        var config = (IDictionary<string, object?>)Single(Render(ChartValuesTests.WindowsHostProcessValues), "ConfigMap")["data"]!;
        Assert.Equal("http://169.254.169.254", config["MsiProxy__Upstreams__0"]);
        Assert.Equal("http://172.21.198.80:80", config["MsiProxy__Upstreams__1"]);
        Assert.Equal("app1", config["MsiProxy__Clients__0__Name"]);
        Assert.Equal("172.21.198.0/24", config["MsiProxy__Clients__0__Address"]);
        Assert.Equal("client_id=11111111-2222-3333-4444-555555555555", config["MsiProxy__Clients__0__Identities__0"]);
        Assert.Equal("system", config["MsiProxy__Clients__0__Identities__1"]);
        Assert.Equal("https://vault.azure.net", config["MsiProxy__Clients__0__Prefetch__0"]);
        Assert.Equal("true", config["MsiProxy__RequireMetadataHeader"]);
        Assert.Equal("0.5", config["MsiProxy__Cache__RefreshAfter"]);
        Assert.Equal("00:00:03", config["MsiProxy__Resilience__AttemptTimeout"]);
        Assert.Equal("http://+:8080", config["ASPNETCORE_URLS"]);
        Assert.Equal("http://+:8081", config["MsiProxy__Management__Urls"]);
        Assert.All(config.Values, v => Assert.IsType<string>(v));
    }

    [Fact]
    public void Rbac_is_read_only_pods_and_the_bindings_config_map()
    {
        var manifests = Render();
        var clusterRule = (IDictionary<string, object?>)Assert.Single((List<object?>)Single(manifests, "ClusterRole")["rules"]!)!;
        Assert.Equal(["pods"], ((List<object?>)clusterRule["resources"]!).Cast<string>());
        Assert.Equal(["get", "list", "watch"], ((List<object?>)clusterRule["verbs"]!).Cast<string>());

        var roleRule = (IDictionary<string, object?>)Assert.Single((List<object?>)Single(manifests, "Role")["rules"]!)!;
        Assert.Equal(["configmaps"], ((List<object?>)roleRule["resources"]!).Cast<string>());
        Assert.Equal(["test-msi-proxy-bindings"], ((List<object?>)roleRule["resourceNames"]!).Cast<string>());
        Assert.Equal(["get", "list", "watch"], ((List<object?>)roleRule["verbs"]!).Cast<string>());
        Assert.Equal("test-msi-proxy-bindings", YamlValues.At(Single(manifests, "ConfigMap", "-bindings"), "metadata.name"));
    }

    [Fact]
    public void Metrics_service_exposes_the_management_port_and_never_the_client_port()
    {
        var service = Single(Render(), "Service");
        var port = (IDictionary<string, object?>)Assert.Single((List<object?>)YamlValues.At(service, "spec.ports")!)!;
        Assert.Equal("management", port["targetPort"]);
        Assert.Equal(8081L, port["port"]);
    }

    [Fact]
    public void Monitors_render_only_when_enabled_and_the_crd_exists()
    {
        const string enabled = "serviceMonitor: {enabled: true}\npodMonitor: {enabled: true}";
        Assert.DoesNotContain(Render(enabled), m => (string?)m["kind"] is "ServiceMonitor" or "PodMonitor");
        var withCrd = Render(enabled, ["v1", "apps/v1", "rbac.authorization.k8s.io/v1", "monitoring.coreos.com/v1"]);
        var monitor = Single(withCrd, "ServiceMonitor");
        Assert.Equal("management", YamlValues.At(monitor, "spec.endpoints.0.port"));
        Assert.Single(withCrd, m => (string?)m["kind"] == "PodMonitor");
    }

    [Fact]
    public void Linux_redirect_adds_host_network_and_a_net_admin_init_container()
    {
        var spec = (IDictionary<string, object?>)YamlValues.At(
            Single(Render("linux: {redirect: {enabled: true, image: reg/iptables:1}}"), "DaemonSet"), "spec.template.spec")!;
        Assert.Equal(true, spec["hostNetwork"]);
        var init = (IDictionary<string, object?>)Assert.Single((List<object?>)spec["initContainers"]!)!;
        Assert.Equal(["NET_ADMIN", "NET_RAW"], ((List<object?>)YamlValues.At(init, "securityContext.capabilities.add")!).Cast<string>());
        Assert.Contains("--to-destination \"$HOST_IP:8080\"", (string)((List<object?>)init["command"]!)[2]!, StringComparison.Ordinal);
        Assert.Throws<TemplateException>(() => Render("linux: {redirect: {enabled: true}}"));
    }

    [Fact]
    public void Notes_tell_the_user_how_to_check_the_release()
    {
        var notes = Chart.Render()["NOTES.txt"];
        Assert.Contains("rollout status daemonset/test-msi-proxy", notes, StringComparison.Ordinal);
        Assert.Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST", notes, StringComparison.Ordinal);
        Assert.Contains("/readyz", notes, StringComparison.Ordinal);
    }
}
