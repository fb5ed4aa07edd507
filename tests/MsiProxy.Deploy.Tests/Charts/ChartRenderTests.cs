using MsiProxy.Clients;
using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Interception.Kubernetes;
using MsiProxy.Kubernetes.Bindings;
using MsiProxy.Kubernetes.Pods;
using MsiProxy.Routing;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// Each documented mode as real helm renders it. What the proxy reads from a render (appsettings.json, environment,
/// bindings file) goes through the proxy's own configuration binding, validators, bindings parser and pod rules builder,
/// so the chart cannot drift from the code.
/// </summary>
public class ChartRenderTests
{
    private static readonly HelmChart Chart = HelmChart.MsiProxy;

    private static ChartRender Render(string mode = HelmChart.Default, string overrides = "") => Chart.Render(mode, overrides);

    [Fact]
    public void Default_render_has_the_expected_kinds_and_no_monitoring_objects()
    {
        Assert.Equal(
            ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "ConfigMap", "DaemonSet", "Role", "RoleBinding", "Service", "ServiceAccount"],
            Render().Kinds.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(HelmChart.Default)]
    [InlineData("dnat")]
    [InlineData("windows-hostprocess")]
    public void Probes_hit_health_endpoints_on_the_management_port_only(string mode)
    {
        var container = new ProxyPod(Chart.Render(mode)).Container;
        Assert.Equal("/healthz", YamlValues.At(container, "livenessProbe.httpGet.path"));
        Assert.Equal("/readyz", YamlValues.At(container, "readinessProbe.httpGet.path"));
        Assert.Equal("management", YamlValues.At(container, "livenessProbe.httpGet.port"));
        Assert.Equal("management", YamlValues.At(container, "readinessProbe.httpGet.port"));
        var ports = ((List<object?>)container["ports"]!).Cast<IDictionary<string, object?>>().ToDictionary(p => (string)p["name"]!, p => p["containerPort"]);
        Assert.Equal(8081L, ports["management"]);
        Assert.Equal(mode == "dnat" ? 8090L : 8080L, ports["client"]);
    }

    [Fact]
    public void Linux_default_is_the_sdk_path_non_root_on_the_pod_network_without_any_capability()
    {
        var pod = new ProxyPod(Render());
        Assert.Equal("linux", YamlValues.Map(pod.Spec, "nodeSelector")["kubernetes.io/os"]);
        Assert.Equal(1654L, YamlValues.At(pod.Spec, "securityContext.runAsUser"));
        Assert.Equal("msi-proxy:0.1.0", pod.Container["image"]);
        Assert.False(pod.Spec.ContainsKey("hostNetwork"));
        Assert.Empty(pod.CapabilitiesAdded);
        Assert.DoesNotContain("/run/xtables.lock", pod.Mounts.Keys);
        Assert.Equal(8080L, YamlValues.At(pod.Container, "ports.0.hostPort"));
        Assert.Equal("http://+:8080", pod.Environment["ASPNETCORE_URLS"]);
        Assert.Equal("http://+:8081", pod.Environment["MsiProxy__Management__Urls"]);
        Assert.Equal("spec.nodeName", YamlValues.At(Env(pod, "NODE_NAME"), "valueFrom.fieldRef.fieldPath"));

        var options = pod.Options;
        Assert.True(options.Kubernetes.Enabled);
        Assert.False(options.Kubernetes.Dnat.Enabled);
        Assert.Equal(ProxyPod.NodeName, options.Kubernetes.NodeName);
        Assert.Equal([MsiProxy.Configuration.MsiProxyOptions.ImdsAddress], options.EffectiveUpstreams);

        // No bindings in the default values: the file exists and grants nothing.
        Assert.Empty(BindingsParser.Parse(pod.Files[options.Kubernetes.BindingsPath!]).Bindings);
    }

    [Fact]
    public void The_configuration_is_one_appsettings_json_in_the_content_root_fed_by_the_typed_values_and_config()
    {
        var pod = new ProxyPod(Render("config"));
        Assert.Equal("/etc/msi-proxy/config", pod.Environment["ASPNETCORE_CONTENTROOT"]);
        Assert.Equal(Chart.FullName, YamlValues.At(pod.Mounts["/etc/msi-proxy/config"], "configMap.name"));

        // The generic map: keys no typed value exists for reach the proxy's options as written.
        var options = pod.Options;
        Assert.Equal(20000, options.Cache.MaxEntries);
        Assert.Equal(TimeSpan.FromMinutes(10), options.Cache.MinimumRemainingLifetime);
        Assert.Equal(TimeSpan.FromSeconds(2), options.Resilience.AttemptTimeout);
        Assert.Equal(TimeSpan.FromSeconds(6), options.Resilience.RequestBudget);
        Assert.Equal(40, options.Resilience.MaxQueuePerClient);
        Assert.Equal(["token", "instance"], options.DefaultEndpoints);
        Assert.Equal(["https://vault.azure.net"], options.Prefetch.Resources);
        Assert.Equal(TimeSpan.FromMinutes(5), options.Kubernetes.ResyncInterval);
        Assert.Equal("Debug", pod.Configuration["Serilog:MinimumLevel:Override:MsiProxy.Requests"]);
        // ...merged with what the typed values feed: a typed value and config in one file, not one env var per key.
        Assert.Equal("Warning", pod.Configuration["Serilog:MinimumLevel:Default"]);
        Assert.True(options.Kubernetes.Enabled);
        Assert.Equal("/etc/msi-proxy/admin/api-key", options.Management.ApiKeyFile);
        Assert.Equal("/etc/msi-proxy/bindings/bindings.yaml", options.Kubernetes.BindingsPath);
        Assert.Equal("0", pod.Environment["DOTNET_gcServer"]);
        // Environment variables only where appsettings.json cannot do it: a URL made of $(NODE_IP), and the state file,
        // which the image sets as an environment variable (only another one overrides it).
        Assert.Equal(["MsiProxy__Management__Urls", "MsiProxy__StateFile"],
            pod.Environment.Keys.Where(k => k.StartsWith("MsiProxy__", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void A_key_config_sets_wins_over_the_typed_value_that_feeds_it()
    {
        var pod = new ProxyPod(Render(overrides: """
            upstreams: ["http://169.254.169.254"]
            config:
              MsiProxy:
                Upstreams: ["http://172.21.198.80:80"]
            """));
        Assert.Equal(["http://172.21.198.80:80"], pod.Options.Upstreams);
    }

    [Theory]
    [InlineData("{urls: \"http://+:80\"}", "config sets urls, which the chart derives: set ports.client instead")]
    [InlineData("{MsiProxy: {Management: {Urls: \"http://+:9\"}}}", "set ports.management instead")]
    [InlineData("{MsiProxy: {Management: {ApiKey: 0123456789abcdef0}}}", "config sets MsiProxy:Management:ApiKey, which the chart derives: set adminApi instead")]
    [InlineData("{MsiProxy: {Kubernetes: {enabled: false}}}", "config sets MsiProxy:Kubernetes:enabled, which the chart derives: set kubernetes.enabled instead")]
    [InlineData("{MsiProxy: {Kubernetes: {Dnat: {ProxyAddress: 10.0.0.1}}}}", "the rule targets the node IP")]
    [InlineData("{MsiProxy: {Kubernetes: {BindingsPath: /x}}}", "set kubernetes.bindings instead")]
    [InlineData("{msiproxy: {Cache: {MaxEntries: 5}}}", "config spells MsiProxy, which the chart also writes, as msiproxy: spell it MsiProxy")]
    [InlineData("{Serilog: {minimumLevel: {Override: {Yarp: Debug}}}}", "spell it Serilog:MinimumLevel")]
    [InlineData("{MsiProxy: {StateFile: /tmp/state.json}}", "config sets MsiProxy:StateFile, which the chart derives: set state instead")]
    public void Config_may_not_set_what_the_chart_derives_nor_respell_what_it_writes(string config, string message)
    {
        // Either the proxy would run unlike the render (a second listener, DNAT without host network), or the JSON
        // would hold one key twice in two spellings, which .NET configuration refuses at start-up.
        var result = Chart.TryRender(overrides: "config: " + config);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(message, result.Errors, StringComparison.Ordinal);
    }

    [Fact]
    public void The_state_file_is_on_an_empty_dir_by_default_and_in_a_node_folder_with_host_path()
    {
        var pod = new ProxyPod(Render());
        Assert.Equal("/var/lib/msi-proxy/state.json", pod.Options.StateFile);
        Assert.Equal(new Dictionary<string, object?>(), YamlValues.At(pod.Mounts["/var/lib/msi-proxy"], "emptyDir"));
        Assert.False(pod.Spec.ContainsKey("initContainers"));

        // hostPath: one folder per release on the node, made the proxy user's by an init container that can only chown.
        var onNode = new ProxyPod(Render(overrides: "state: {volume: hostPath}"));
        Assert.Equal("/var/lib/msi-proxy/state.json", onNode.Options.StateFile);
        Assert.Equal(("/var/lib/msi-proxy/test-msi-proxy", "DirectoryOrCreate"),
            ((string?)YamlValues.At(onNode.Mounts["/var/lib/msi-proxy"], "hostPath.path"), (string?)YamlValues.At(onNode.Mounts["/var/lib/msi-proxy"], "hostPath.type")));
        var owner = (IDictionary<string, object?>)Assert.Single((List<object?>)onNode.Spec["initContainers"]!)!;
        Assert.Equal(["chown", "1654:1654", "/var/lib/msi-proxy"], ((List<object?>)owner["command"]!).Cast<string>());
        Assert.Equal(["CHOWN"], ((List<object?>)YamlValues.At(owner, "securityContext.capabilities.add")!).Cast<string>());
        Assert.Equal(["ALL"], ((List<object?>)YamlValues.At(owner, "securityContext.capabilities.drop")!).Cast<string>());
        Assert.Equal(false, YamlValues.At(owner, "securityContext.allowPrivilegeEscalation"));
        Assert.Equal("/var/lib/msi-proxy", YamlValues.At(owner, "volumeMounts.0.mountPath"));
        Assert.Equal("/x/y", YamlValues.At(new ProxyPod(Render(overrides: "state: {volume: hostPath, hostPath: /x/y}")).Mounts["/var/lib/msi-proxy"], "hostPath.path"));

        // With the pod rules the proxy is root already, the owner of what the kubelet creates: nothing to chown.
        Assert.False(new ProxyPod(Render("dnat", "state: {volume: hostPath}")).Spec.ContainsKey("initContainers"));

        var windows = new ProxyPod(Render("windows", "state: {volume: hostPath}"));
        Assert.Equal(@"C:\ProgramData\MsiProxy\state.json", windows.Options.StateFile);
        Assert.Equal(@"C:\ProgramData\MsiProxy\test-msi-proxy", YamlValues.At(windows.Mounts[@"C:\ProgramData\MsiProxy"], "hostPath.path"));
        Assert.False(windows.Spec.ContainsKey("initContainers"));

        // A HostProcess container is the node: it writes to the node's folder itself, through no volume.
        var hostProcess = new ProxyPod(Render("windows-hostprocess"));
        Assert.Equal(@"C:\ProgramData\MsiProxy\test-msi-proxy\state.json", hostProcess.Options.StateFile);
        Assert.DoesNotContain(hostProcess.Mounts.Keys, k => k.Contains("MsiProxy", StringComparison.Ordinal));
    }

    [Fact]
    public void Pods_roll_when_appsettings_change_but_not_when_only_the_bindings_do()
    {
        static object? Checksum(ChartRender render) => YamlValues.Map(render.Single("DaemonSet"), "spec.template.metadata.annotations")["checksum/config"];

        var baseline = Checksum(Render("sdk-path"));
        Assert.Equal(baseline, Checksum(Render("sdk-path", "kubernetes: {bindings: [{namespace: b, serviceAccount: c, identities: [system]}]}")));
        Assert.NotEqual(baseline, Checksum(Render("sdk-path", "config: {MsiProxy: {Cache: {MaxEntries: 5}}}")));
        Assert.NotEqual(baseline, Checksum(Render("sdk-path", "logLevel: Debug")));
    }

    [Fact]
    public void Windows_host_process_uses_host_network_windows_nodes_the_per_build_tag_and_the_admin_key_as_a_file()
    {
        var render = Render("windows-hostprocess");
        var pod = new ProxyPod(render);
        Assert.Equal(true, pod.Spec["hostNetwork"]);
        Assert.Equal("windows", YamlValues.Map(pod.Spec, "nodeSelector")["kubernetes.io/os"]);
        Assert.Equal(true, YamlValues.At(pod.Spec, "securityContext.windowsOptions.hostProcess"));
        Assert.Equal("NT AUTHORITY\\SYSTEM", YamlValues.At(pod.Spec, "securityContext.windowsOptions.runAsUserName"));
        Assert.Equal("msi-proxy:0.1.0-ltsc2025", pod.Container["image"]);
        Assert.DoesNotContain(render.Kinds, k => k is "ClusterRole" or "Role");

        // On the node's network the client port listens on the node IP only; Windows has no DNAT and no capabilities.
        Assert.Equal($"http://{ProxyPod.NodeIp}:8080", pod.Environment["ASPNETCORE_URLS"]);
        Assert.Equal([$"{ProxyPod.NodeIp}:8080"], Listeners.FromConfiguration(pod.Configuration).ClientUrls.Select(u => Listeners.ParseUrl(u, "urls").ToString()));
        Assert.False(pod.Options.Kubernetes.Dnat.Enabled);
        Assert.False(pod.Container.ContainsKey("securityContext"));
        Assert.DoesNotContain("/run/xtables.lock", pod.Mounts.Keys);
        Assert.Equal(["http://169.254.169.254", "http://172.21.198.80:80"], pod.Options.Upstreams);

        // The admin key arrives as a file from a chart-made Secret, never as a literal in the ConfigMap or the pod.
        Assert.Equal("s3cret-s3cret-s3cret", pod.Files[pod.Options.Management.ApiKeyFile!]);
        Assert.DoesNotContain("s3cret", pod.AppSettings, StringComparison.Ordinal);
        Assert.DoesNotContain(pod.Environment.Values, v => v.Contains("s3cret", StringComparison.Ordinal));
    }

    [Fact]
    public void Windows_without_host_process_runs_as_container_user_with_pod_discovery_and_no_dnat()
    {
        var pod = new ProxyPod(Render("windows"));
        Assert.Equal("ContainerUser", YamlValues.At(pod.Spec, "securityContext.windowsOptions.runAsUserName"));
        Assert.Equal("msi-proxy:0.1.0-ltsc2022", pod.Container["image"]);
        Assert.False(pod.Spec.ContainsKey("hostNetwork"));
        Assert.Equal(8080L, YamlValues.At(pod.Container, "ports.0.hostPort"));
        var options = pod.Options;
        Assert.True(options.Kubernetes.Enabled);
        Assert.False(options.Kubernetes.Dnat.Enabled);
        Assert.Empty(pod.CapabilitiesAdded);
        Assert.DoesNotContain("/tmp", pod.Mounts.Keys);
        Assert.Single(BindingsParser.Parse(pod.Files[options.Kubernetes.BindingsPath!]).Bindings);
    }

    [Fact]
    public void Msiserviceclient_mode_serves_static_clients_through_its_upstreams_without_api_access()
    {
        var render = Render("msiserviceclient");
        var pod = new ProxyPod(render);
        var options = pod.Options;
        Assert.Equal(["http://169.254.169.254", "http://172.21.198.80:80"], options.Upstreams);
        var client = Assert.Single(options.Clients);
        Assert.Equal("app1", client.Name);
        Assert.Equal("172.21.198.0/24", client.Address);
        Assert.Equal(["client_id=11111111-2222-3333-4444-555555555555", "system"], client.Identities);
        Assert.Equal(["https://vault.azure.net"], client.Prefetch);

        Assert.False(options.Kubernetes.Enabled);
        Assert.Null(options.Kubernetes.BindingsPath);
        Assert.Equal(false, pod.Spec["automountServiceAccountToken"]);
        Assert.DoesNotContain(render.Kinds, k => k is "ClusterRole" or "Role" or "ClusterRoleBinding" or "RoleBinding");
        Assert.Single(render.Manifests, m => (string?)m["kind"] == "ConfigMap");
        Assert.DoesNotContain("/etc/msi-proxy/bindings", pod.Mounts.Keys);
    }

    [Fact]
    public void Rbac_names_the_bindings_config_map_and_binds_the_service_account()
    {
        var render = Render();
        Assert.Equal([$"{Chart.FullName}-bindings"], ((List<object?>)YamlValues.At(render.Single("Role"), "rules.0.resourceNames")!).Cast<string>());
        Assert.Equal(Chart.FullName, YamlValues.At(render.Single("ClusterRoleBinding"), "subjects.0.name"));
        Assert.Equal(HelmChart.Namespace, YamlValues.At(render.Single("ClusterRoleBinding"), "subjects.0.namespace"));
        Assert.Equal(Chart.FullName, YamlValues.At(render.Single("DaemonSet"), "spec.template.spec.serviceAccountName"));
        Assert.Equal(true, YamlValues.At(render.Single("ServiceAccount"), "automountServiceAccountToken"));
    }

    [Fact]
    public void Identity_header_secrets_get_a_role_per_namespace_with_exactly_their_names_and_only_get()
    {
        var render = Render("identity-header");
        static string Of(IDictionary<string, object?> m, string path) => (string)YamlValues.At(m, path)!;
        var roles = render.Manifests.Where(m => (string?)m["kind"] == "Role" && Of(m, "metadata.name") == $"{Chart.FullName}-identity-headers")
            .ToDictionary(m => Of(m, "metadata.namespace"));

        // The Secrets the bindings name (one Secret with two keys is one name), and team-c's from identityHeaderSecrets.
        Assert.Equal(["team-a", "team-b", "team-c"], roles.Keys.Order(StringComparer.Ordinal));
        var expected = new Dictionary<string, string[]>
        {
            ["team-a"] = ["api-identity", "worker-identity"],
            ["team-b"] = ["win-identity"],
            ["team-c"] = ["batch-identity"],
        };
        foreach (var (ns, role) in roles)
        {
            var rule = (IDictionary<string, object?>)Assert.Single((List<object?>)role["rules"]!)!;
            Assert.Equal([""], Strings(rule["apiGroups"]));
            Assert.Equal(["secrets"], Strings(rule["resources"]));
            Assert.Equal(expected[ns], Strings(rule["resourceNames"]));
            Assert.Equal(["get"], Strings(rule["verbs"]));

            // Bound to the proxy's service account, in the release's namespace.
            var binding = Assert.Single(render.Manifests, m => (string?)m["kind"] == "RoleBinding" && Of(m, "metadata.namespace") == ns);
            Assert.Equal(Of(role, "metadata.name"), Of(binding, "roleRef.name"));
            Assert.Equal("Role", Of(binding, "roleRef.kind"));
            Assert.Equal(Chart.FullName, Of(binding, "subjects.0.name"));
            Assert.Equal(HelmChart.Namespace, Of(binding, "subjects.0.namespace"));
        }

        // Nothing else may touch Secrets, and the rendered bindings carry what the proxy needs to read them.
        Assert.DoesNotContain(render.Manifests.Where(m => (string?)m["kind"] == "ClusterRole" || !roles.ContainsValue(m)),
            m => m.TryGetValue("rules", out var rules) && ((List<object?>)rules!).Cast<IDictionary<string, object?>>().Any(r => Strings(r["resources"]).Contains("secrets")));
        var pod = new ProxyPod(render);
        var bindings = BindingsParser.Parse(pod.Files[pod.Options.Kubernetes.BindingsPath!]);
        Assert.Equal(
            ["address+secret team-a/api-identity IDENTITY_HEADER", "address+secret team-a/worker-identity IDENTITY_HEADER",
             "secret team-a/api-identity CRON_IDENTITY_HEADER", "secret team-b/win-identity IDENTITY_HEADER", "address"],
            bindings.Bindings.Select(b => b.IdentityHeaderSecret is { } s ? $"{b.Proof.Name()} {b.Namespace}/{s.Name} {s.Key}" : b.Proof.Name()));
        Assert.All(bindings.Bindings.Where(b => b.IdentityHeaderSecret is not null), b => Assert.Contains(b.IdentityHeaderSecret!.Name, expected[b.Namespace]));

        // Without such bindings, no Secret is granted at all.
        Assert.DoesNotContain(Render().Manifests, m => (string?)YamlValues.At(m, "metadata.name") == $"{Chart.FullName}-identity-headers");
    }

    [Fact]
    public void Metrics_service_exposes_the_management_port_and_never_the_client_port()
    {
        var service = Render().Single("Service");
        var port = (IDictionary<string, object?>)Assert.Single((List<object?>)YamlValues.At(service, "spec.ports")!)!;
        Assert.Equal("management", port["targetPort"]);
        Assert.Equal(8081L, port["port"]);
        Assert.Equal($"{Chart.FullName}-metrics", YamlValues.At(service, "metadata.name"));
    }

    [Fact]
    public void Monitors_and_telemetry_render_only_when_enabled_and_the_crds_exist()
    {
        Assert.DoesNotContain(Chart.Render("monitoring").Kinds, k => k is "ServiceMonitor" or "PodMonitor");
        Assert.DoesNotContain(Chart.Render(apiVersions: HelmChart.MonitoringApi).Kinds, k => k is "ServiceMonitor" or "PodMonitor");

        var render = Chart.Render("monitoring", apiVersions: HelmChart.MonitoringApi);
        var serviceMonitor = render.Single("ServiceMonitor");
        Assert.Equal("management", YamlValues.At(serviceMonitor, "spec.endpoints.0.port"));
        Assert.Equal("/metrics", YamlValues.At(serviceMonitor, "spec.endpoints.0.path"));
        Assert.Equal("15s", YamlValues.At(serviceMonitor, "spec.endpoints.0.interval"));
        Assert.Equal("prometheus", YamlValues.At(serviceMonitor, "metadata.labels.release"));
        Assert.Equal(YamlValues.Map(render.Single("Service"), "metadata.labels")["app.kubernetes.io/instance"],
            YamlValues.Map(serviceMonitor, "spec.selector.matchLabels")["app.kubernetes.io/instance"]);
        Assert.Equal("management", YamlValues.At(render.Single("PodMonitor"), "spec.podMetricsEndpoints.0.port"));

        var pod = new ProxyPod(render);
        Assert.Equal("http://otel-collector.observability:4317", pod.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        Assert.Equal("msi-proxy-aks", pod.Environment["OTEL_SERVICE_NAME"]);
    }

    [Fact]
    public void Linux_dnat_runs_the_rule_service_in_the_proxy_on_the_node_network()
    {
        var render = Render("dnat");
        var pod = new ProxyPod(render);

        Assert.Equal(true, pod.Spec["hostNetwork"]);
        Assert.Equal("ClusterFirstWithHostNet", pod.Spec["dnsPolicy"]);
        Assert.True((long)pod.Spec["terminationGracePeriodSeconds"]! >= 10, "in-flight requests finish on SIGTERM");
        Assert.False(pod.Spec.ContainsKey("initContainers"));
        Assert.False(pod.Container.ContainsKey("lifecycle"), "nothing may touch the pod rules when the proxy stops (fail closed)");
        Assert.Equal("linux", YamlValues.Map(pod.Spec, "nodeSelector")["kubernetes.io/os"]);
        Assert.False(YamlValues.Map(pod.Container, "ports.0").ContainsKey("hostPort"));

        // NET_ADMIN (and NET_RAW for iptables-legacy) on the proxy container, everything else dropped.
        Assert.Equal(["NET_ADMIN", "NET_RAW"], pod.CapabilitiesAdded);
        Assert.Equal(0L, YamlValues.At(pod.Container, "securityContext.runAsUser"));

        var xtables = pod.Mounts["/run/xtables.lock"];
        Assert.Equal("/run/xtables.lock", YamlValues.At(xtables, "hostPath.path"));
        Assert.Equal("FileOrCreate", YamlValues.At(xtables, "hostPath.type"));
        Assert.Equal("status.hostIP", YamlValues.At(Env(pod, "NODE_IP"), "valueFrom.fieldRef.fieldPath"));

        // What the proxy makes of it: the rule it will install, and where it listens.
        var options = pod.Options;
        Assert.Equal(ProxyPod.NodeName, options.Kubernetes.NodeName);
        var dnat = options.Kubernetes.Dnat;
        Assert.True(dnat.Enabled);
        Assert.Equal(ProxyPod.NodeIp, dnat.ProxyAddress);
        Assert.Equal(8090, dnat.ProxyPort);
        Assert.Equal(TimeSpan.FromSeconds(30), dnat.ReconcileInterval);
        Assert.Equal("iptables", dnat.Command);
        Assert.Equal(
            [
                $"-A {PodRules.NatChain} -s 10.244.0.0/16 -i azv+ -p tcp -m tcp --dport 80 -j DNAT --to-destination {ProxyPod.NodeIp}:8090",
                $"-A {PodRules.DropChain} -s 10.244.0.0/16 -i azv+ -j DROP",
            ],
            PodRules.Describe(dnat).Take(2));

        // The rule's target is exactly where the client listener is, and management is not on the client port.
        var listeners = Listeners.FromConfiguration(pod.Configuration);
        Assert.Equal([$"{ProxyPod.NodeIp}:8090"], listeners.ClientUrls.Select(u => Listeners.ParseUrl(u, "urls").ToString()));
        Assert.Equal([$"{ProxyPod.NodeIp}:8081", "127.0.0.1:8081"], listeners.ManagementUrls.Select(u => Listeners.ParseUrl(u, "m").ToString()));

        // The same RBAC as without DNAT: nothing extra for the rule.
        static IEnumerable<string> Rbac(ChartRender r) =>
            r.Manifests.Where(m => ((string)m["kind"]!).Contains("Role", StringComparison.Ordinal)).Select(m => YamlValues.ToJson(m)!.ToJsonString());
        Assert.Equal(Rbac(Render()), Rbac(render));
    }

    [Fact]
    public void Bindings_are_rendered_in_the_format_the_proxy_parses_and_grant_what_the_values_say()
    {
        var pod = new ProxyPod(Render("dnat"));
        var path = pod.Options.Kubernetes.BindingsPath!;
        Assert.StartsWith("/etc/msi-proxy/bindings/", path, StringComparison.Ordinal);
        Assert.Equal($"{Chart.FullName}-bindings", YamlValues.At(pod.Mounts["/etc/msi-proxy/bindings"], "configMap.name"));

        var bindings = BindingsParser.Parse(pod.Files[path]);
        Assert.Equal(2, bindings.Bindings.Count);

        static PodInfo Pod(string ns, string serviceAccount, params (string Key, string Value)[] labels) => new()
        {
            Uid = Guid.NewGuid().ToString(), Namespace = ns, Name = "p", ServiceAccount = serviceAccount, Address = System.Net.IPAddress.Parse("10.244.1.7"), Phase = "Running",
            Labels = labels.ToDictionary(l => l.Key, l => l.Value, StringComparer.Ordinal),
        };

        Assert.Equal(["client_id=1f0c2a4e-6b3d-4c8a-9e71-2d5b7a9c0e13"], bindings.IdentitiesFor(Pod("team-a", "api")).Select(i => i.ToString()));
        Assert.Equal(["client_id=7a9e1c3b-2d4f-4e60-8a1b-3c5d7e9f1a2b", "system"],
            bindings.IdentitiesFor(Pod("team-b", "worker", ("app", "worker"))).Select(i => i.ToString()));
        Assert.Empty(bindings.IdentitiesFor(Pod("team-b", "worker", ("app", "cron"))));
        Assert.Empty(bindings.IdentitiesFor(Pod("team-c", "api")));
    }

    [Fact]
    public void A_binding_past_the_schema_is_rendered_as_written_and_rejected_by_the_proxy_parser()
    {
        // helm's schema check stops this at install (ChartValuesTests); skipped, the proxy names the bad key instead of guessing.
        const string values = "kubernetes: {bindings: [{namespace: a, serviceAccount: b, identities: [system], annotations: {x: y}}]}";
        Assert.NotEqual(0, Chart.TryRender(overrides: values).ExitCode);
        var pod = new ProxyPod(Chart.Render(overrides: values, validateSchema: false));
        var error = Assert.Throws<FormatException>(() => BindingsParser.Parse(pod.Files[pod.Options.Kubernetes.BindingsPath!]));
        Assert.Contains("annotations", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Helm_test_pods_call_readyz_on_the_management_port_and_the_client_path_of_their_node()
    {
        var readyz = Render().TestPod($"{Chart.FullName}-test-readyz");
        Assert.Equal(["timeout", "10", "wget", "-q", "-O", "-", $"http://{Chart.FullName}-metrics.{HelmChart.Namespace}.svc:8081/readyz"],
            ((List<object?>)YamlValues.At(readyz, "spec.containers.0.command")!).Cast<string>());

        static string TokenUrl(ChartRender render) =>
            (string)((List<object?>)YamlValues.At(render.TestPod($"{HelmChart.Release}-msi-proxy-test-client-path"), "spec.containers.0.env")!)
                .Cast<IDictionary<string, object?>>().Single(e => (string?)e["name"] == "TOKEN_URL")["value"]!;
        Assert.StartsWith("http://$(HOST_IP):8080/metadata/identity/oauth2/token?", TokenUrl(Render()), StringComparison.Ordinal);
        Assert.StartsWith("http://169.254.169.254/metadata/identity/oauth2/token?", TokenUrl(Render("dnat")), StringComparison.Ordinal);

        // Windows nodes: the Linux test image cannot run there, so only the readyz test (scheduled on a Linux node).
        Assert.Equal([$"{Chart.FullName}-test-readyz"], Render("windows").TestPods.Select(p => (string)YamlValues.At(p, "metadata.name")!));
        Assert.Empty(Render(overrides: "hostPort: {enabled: false}\nmetrics: {service: {enabled: false}}").TestPods);
    }

    [Fact]
    public void Notes_tell_the_user_how_to_check_the_release_and_what_is_transparent()
    {
        var notes = Chart.Notes();
        Assert.Contains($"rollout status daemonset/{Chart.FullName}", notes, StringComparison.Ordinal);
        Assert.Contains($"helm test {HelmChart.Release} -n {HelmChart.Namespace}", notes, StringComparison.Ordinal);
        Assert.Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST", notes, StringComparison.Ordinal);
        Assert.Contains("\"http://$(HOST_IP):8080\"", notes, StringComparison.Ordinal);
        Assert.Contains("NOT transparent", notes, StringComparison.Ordinal);
        Assert.Contains("kubernetes.dnat.enabled=true", notes, StringComparison.Ordinal);
        Assert.Contains("/readyz", notes, StringComparison.Ordinal);
        Assert.Contains($"{Chart.FullName}-bindings", notes, StringComparison.Ordinal);

        var dnat = Chart.Notes("dnat");
        Assert.Contains("TRANSPARENT", dnat, StringComparison.Ordinal);
        Assert.Contains("--to-destination <node IP>:8090", dnat, StringComparison.Ordinal);
        Assert.Contains("from interfaces azv+", dnat, StringComparison.Ordinal);
        Assert.DoesNotContain("AZURE_POD_IDENTITY_AUTHORITY_HOST", dnat, StringComparison.Ordinal);

        var windows = Chart.Notes("windows");
        Assert.Contains("NOT transparent", windows, StringComparison.Ordinal);
        Assert.Contains("Windows nodes have no DNAT", windows, StringComparison.Ordinal);
        Assert.Contains("windows.hostProcess", windows, StringComparison.Ordinal);

        var hostProcess = Chart.Notes("windows-hostprocess");
        Assert.Contains("HostProcess proxy runs on the node network", hostProcess, StringComparison.Ordinal);
        Assert.Contains("AZURE_POD_IDENTITY_AUTHORITY_HOST", hostProcess, StringComparison.Ordinal);
        Assert.Contains("pod discovery is off", hostProcess, StringComparison.Ordinal);
    }

    private static List<string> Strings(object? list) => ((List<object?>)list!).Cast<string>().ToList();

    private static IDictionary<string, object?> Env(ProxyPod pod, string name) =>
        Assert.Single(((List<object?>)pod.Container["env"]!).Cast<IDictionary<string, object?>>(), e => (string?)e["name"] == name);
}
