using Microsoft.Extensions.Logging.Abstractions;
using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Hosting;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
using MsiProxy.Kubernetes;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// The chart rendered (as `helm template` would) with default, Linux+DNAT, Windows and HostProcess values. What the proxy
/// reads from a render (bindings file, MsiProxy:Kubernetes:* settings, listener URLs) goes through the proxy's own parser,
/// validator and DNAT rule builder, so the chart cannot drift from the code.
/// </summary>
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
    public void Linux_default_is_the_sdk_path_on_the_pod_network_without_any_capability()
    {
        var pod = new ProxyPod(Render());
        Assert.False(pod.Spec.ContainsKey("hostNetwork"));
        Assert.Empty(pod.CapabilitiesAdded);
        Assert.Equal(["ALL"], ((List<object?>)YamlValues.At(pod.Container, "securityContext.capabilities.drop")!).Cast<string>());
        Assert.DoesNotContain("/run/xtables.lock", pod.Mounts.Keys);
        Assert.Equal(8080L, YamlValues.At(pod.Container, "ports.0.hostPort"));
        Assert.Equal("http://+:8080", pod.Environment["ASPNETCORE_URLS"]);
        Assert.Equal("http://+:8081", pod.Environment["MsiProxy__Management__Urls"]);

        var options = pod.Options;
        Assert.True(options.Kubernetes.Enabled);
        Assert.False(options.Kubernetes.Dnat.Enabled);
        Assert.Equal(ProxyPod.NodeName, options.Kubernetes.NodeName);
        Assert.True(new KubernetesOptionsValidator().Validate(null, options).Succeeded);

        // No bindings in the default values: the file exists and grants nothing.
        Assert.Empty(BindingsParser.Parse(pod.Files[options.Kubernetes.BindingsPath!]).Bindings);
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

        // On the node's network the client port listens on the node IP only; Windows has no DNAT and no capabilities.
        var pod = new ProxyPod(manifests);
        Assert.Equal($"http://{ProxyPod.NodeIp}:8080", pod.Environment["ASPNETCORE_URLS"]);
        Assert.Equal([$"{ProxyPod.NodeIp}:8080"], Listeners.FromConfiguration(pod.Configuration).ClientUrls.Select(u => Listeners.ParseUrl(u, "urls").ToString()));
        Assert.False(pod.Options.Kubernetes.Dnat.Enabled);
        Assert.DoesNotContain(pod.Environment.Keys, k => k.StartsWith("MsiProxy__Kubernetes__Dnat", StringComparison.Ordinal));
        Assert.False(container.ContainsKey("securityContext"));
        Assert.DoesNotContain("/run/xtables.lock", pod.Mounts.Keys);

        // The admin key arrives as a file from a chart-made Secret, never as a literal in the ConfigMap.
        var secret = Single(manifests, "Secret");
        Assert.Equal(Convert.ToBase64String("s3cret"u8.ToArray()), YamlValues.At(secret, "data.api-key"));
        var config = (IDictionary<string, object?>)Single(manifests, "ConfigMap")["data"]!;
        Assert.DoesNotContain(config.Values, v => v?.ToString()?.Contains("s3cret", StringComparison.Ordinal) == true);
        Assert.Equal("/etc/msi-proxy/admin/api-key", config["MsiProxy__Management__ApiKeyFile"]);
    }

    [Fact]
    public void Windows_without_host_process_runs_as_container_user_with_pod_discovery_and_no_dnat()
    {
        // Even a values file that asks for DNAT (the schema rejects it for Windows) gets no rule on Windows nodes.
        var pod = new ProxyPod(Render("os: windows\n" + ChartValuesTests.LinuxDnatValues));
        Assert.Equal("ContainerUser", YamlValues.At(pod.Spec, "securityContext.windowsOptions.runAsUserName"));
        Assert.False(pod.Spec.ContainsKey("hostNetwork"));
        Assert.Equal(8080L, YamlValues.At(pod.Container, "ports.0.hostPort"));
        var options = pod.Options;
        Assert.True(options.Kubernetes.Enabled);
        Assert.False(options.Kubernetes.Dnat.Enabled);
        Assert.Empty(pod.CapabilitiesAdded);
        Assert.DoesNotContain("/run/xtables.lock", pod.Mounts.Keys);
        Assert.Equal(2, BindingsParser.Parse(pod.Files[options.Kubernetes.BindingsPath!]).Bindings.Count);
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
    public void Linux_dnat_runs_the_rule_service_in_the_proxy_on_the_node_network()
    {
        var manifests = Render(ChartValuesTests.LinuxDnatValues);
        var pod = new ProxyPod(manifests);

        Assert.Equal(true, pod.Spec["hostNetwork"]);
        Assert.Equal("ClusterFirstWithHostNet", pod.Spec["dnsPolicy"]);
        Assert.True((long)pod.Spec["terminationGracePeriodSeconds"]! >= 10, "the rule is removed on shutdown");
        Assert.False(pod.Spec.ContainsKey("initContainers"));
        Assert.Equal("linux", ((IDictionary<string, object?>)pod.Spec["nodeSelector"]!)["kubernetes.io/os"]);
        Assert.False(((IDictionary<string, object?>)YamlValues.At(pod.Container, "ports.0")!).ContainsKey("hostPort"));

        // NET_ADMIN (and NET_RAW for iptables-legacy) on the proxy container, everything else dropped.
        Assert.Equal(["NET_ADMIN", "NET_RAW"], pod.CapabilitiesAdded);
        Assert.Equal(["ALL"], ((List<object?>)YamlValues.At(pod.Container, "securityContext.capabilities.drop")!).Cast<string>());
        Assert.Equal(false, YamlValues.At(pod.Container, "securityContext.allowPrivilegeEscalation"));
        Assert.Equal(0L, YamlValues.At(pod.Container, "securityContext.runAsUser"));

        var xtables = pod.Mounts["/run/xtables.lock"];
        Assert.Equal("/run/xtables.lock", YamlValues.At(xtables, "hostPath.path"));
        Assert.Equal("FileOrCreate", YamlValues.At(xtables, "hostPath.type"));

        var env = ((List<object?>)pod.Container["env"]!).Cast<IDictionary<string, object?>>().ToList();
        Assert.Equal("spec.nodeName", YamlValues.At(Assert.Single(env, e => (string?)e["name"] == "NODE_NAME"), "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("status.hostIP", YamlValues.At(Assert.Single(env, e => (string?)e["name"] == "NODE_IP"), "valueFrom.fieldRef.fieldPath"));

        // What the proxy makes of it: valid options, the rule it will install, and where it listens.
        var options = pod.Options;
        var validation = new KubernetesOptionsValidator().Validate(null, options);
        Assert.True(validation.Succeeded, validation.FailureMessage);
        Assert.True(options.Kubernetes.Enabled);
        Assert.Equal(ProxyPod.NodeName, options.Kubernetes.NodeName);
        var dnat = options.Kubernetes.Dnat;
        Assert.True(dnat.Enabled);
        Assert.Equal(ProxyPod.NodeIp, dnat.ProxyAddress);
        Assert.Equal(8080, dnat.ProxyPort);
        Assert.Equal(TimeSpan.FromSeconds(30), dnat.ReconcileInterval);
        var rule = new DnatRule(new NoCommands(), dnat);
        Assert.Equal(
            ["-i", "azv+", "-s", "10.244.0.0/16", "-p", "tcp", "-d", "169.254.169.254/32", "--dport", "80", "-m", "comment", "--comment", DnatRule.Comment,
                "-j", "DNAT", "--to-destination", $"{ProxyPod.NodeIp}:8080"],
            rule.Specification);

        // The rule's target is exactly where the client listener is, and management is not on the client port.
        var listeners = Listeners.FromConfiguration(pod.Configuration);
        Assert.Equal([$"{ProxyPod.NodeIp}:8080"], listeners.ClientUrls.Select(u => Listeners.ParseUrl(u, "urls").ToString()));
        Assert.Equal([$"{ProxyPod.NodeIp}:8081", "127.0.0.1:8081"], listeners.ManagementUrls.Select(u => Listeners.ParseUrl(u, "m").ToString()));

        // The same RBAC as without DNAT: nothing extra for the rule.
        Assert.Equal(
            Render().Where(m => ((string)m["kind"]!).Contains("Role", StringComparison.Ordinal)).Select(m => YamlValues.ToJson(m)!.ToJsonString()),
            manifests.Where(m => ((string)m["kind"]!).Contains("Role", StringComparison.Ordinal)).Select(m => YamlValues.ToJson(m)!.ToJsonString()));
    }

    [Fact]
    public void Without_pod_discovery_there_is_no_dnat_no_bindings_and_no_api_access()
    {
        var manifests = Render("kubernetes: {enabled: false, dnat: {enabled: true, interface: azv+}}");
        var pod = new ProxyPod(manifests);
        Assert.False(pod.Spec.ContainsKey("hostNetwork"));
        Assert.Empty(pod.CapabilitiesAdded);
        Assert.False(pod.Options.Kubernetes.Enabled);
        Assert.False(pod.Options.Kubernetes.Dnat.Enabled);
        Assert.Empty(pod.Files);
        Assert.Equal(false, pod.Spec["automountServiceAccountToken"]);
        Assert.DoesNotContain(manifests, m => (string?)m["kind"] is "ClusterRole" or "Role" or "ClusterRoleBinding" or "RoleBinding");
        Assert.Single(manifests, m => (string?)m["kind"] == "ConfigMap");
    }

    [Fact]
    public void Bindings_are_rendered_in_the_format_the_proxy_parses_and_grant_what_the_values_say()
    {
        var manifests = Render(ChartValuesTests.LinuxDnatValues);
        var pod = new ProxyPod(manifests);
        var path = pod.Options.Kubernetes.BindingsPath!;
        Assert.StartsWith("/etc/msi-proxy/bindings/", path, StringComparison.Ordinal);
        Assert.Equal("test-msi-proxy-bindings", YamlValues.At(pod.Mounts["/etc/msi-proxy/bindings"], "configMap.name"));
        Assert.Equal(true, YamlValues.At(pod.Container, "volumeMounts.1.readOnly"));

        var bindings = BindingsParser.Parse(pod.Files[path]);
        Assert.Equal(2, bindings.Bindings.Count);

        static PodInfo Pod(string ns, string serviceAccount, params (string Key, string Value)[] labels) => new()
        {
            Uid = Guid.NewGuid().ToString(), Namespace = ns, Name = "p", ServiceAccount = serviceAccount, Address = System.Net.IPAddress.Parse("10.244.1.7"), Phase = "Running",
            Labels = labels.ToDictionary(l => l.Key, l => l.Value, StringComparer.Ordinal),
        };

        Assert.Equal(["client_id=1f0c2a4e-6b3d-4c8a-9e71-2d5b7a9c0e13"], bindings.IdentitiesFor(Pod("team-a", "api")).Select(i => i.ToString()));
        Assert.Equal(["client_id=7a9e1c3b-2d4f-4e60-8a1b-3c5d7e9f1a2b", "system"],
            bindings.IdentitiesFor(Pod("team-b", "worker", ("app", "worker"), ("tier", "true"))).Select(i => i.ToString()));
        Assert.Empty(bindings.IdentitiesFor(Pod("team-b", "worker", ("app", "cron"), ("tier", "true"))));
        Assert.Empty(bindings.IdentitiesFor(Pod("team-c", "api")));
    }

    [Fact]
    public void A_binding_the_proxy_would_reject_is_rendered_as_written_and_rejected_by_the_proxy_parser()
    {
        // The schema stops this at install; if it were bypassed, the proxy names the bad key instead of guessing.
        var pod = new ProxyPod(Render("kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], annotations: {x: y}}]}"));
        var error = Assert.Throws<FormatException>(() => BindingsParser.Parse(pod.Files[pod.Options.Kubernetes.BindingsPath!]));
        Assert.Contains("annotations", error.Message, StringComparison.Ordinal);
    }

    private sealed class NoCommands : ICommandRunner
    {
        public Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("a render test never runs iptables");
    }

    [Fact]
    public void Notes_tell_the_user_how_to_check_the_release_and_what_is_transparent()
    {
        var notes = Chart.Render()["NOTES.txt"];
        Assert.Contains("rollout status daemonset/test-msi-proxy", notes, StringComparison.Ordinal);
        Assert.Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST", notes, StringComparison.Ordinal);
        Assert.Contains("\"http://$(HOST_IP):8080\"", notes, StringComparison.Ordinal);
        Assert.Contains("NOT transparent", notes, StringComparison.Ordinal);
        Assert.Contains("kubernetes.dnat.enabled=true", notes, StringComparison.Ordinal);
        Assert.Contains("/readyz", notes, StringComparison.Ordinal);
        Assert.Contains("test-msi-proxy-bindings", notes, StringComparison.Ordinal);

        var dnat = Chart.Render(ChartValuesTests.LinuxDnatValues)["NOTES.txt"];
        Assert.Contains("TRANSPARENT", dnat, StringComparison.Ordinal);
        Assert.Contains("--to-destination <node IP>:8080", dnat, StringComparison.Ordinal);
        Assert.Contains("from interfaces azv+", dnat, StringComparison.Ordinal);
        Assert.DoesNotContain("AZURE_POD_IDENTITY_AUTHORITY_HOST", dnat, StringComparison.Ordinal);

        var windows = Chart.Render("os: windows")["NOTES.txt"];
        Assert.Contains("NOT transparent", windows, StringComparison.Ordinal);
        Assert.Contains("Windows nodes have no DNAT", windows, StringComparison.Ordinal);
        Assert.Contains("windows.hostProcess", windows, StringComparison.Ordinal);

        var hostProcess = Chart.Render(ChartValuesTests.WindowsHostProcessValues)["NOTES.txt"];
        Assert.Contains("HostProcess proxy runs on the node network", hostProcess, StringComparison.Ordinal);
        Assert.Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST", hostProcess, StringComparison.Ordinal);
        Assert.Contains("pod discovery is off", hostProcess, StringComparison.Ordinal);
    }
}
