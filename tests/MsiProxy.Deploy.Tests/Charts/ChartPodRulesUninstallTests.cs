using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// <c>kubernetes.dnat.uninstall</c>, the chart's way to remove the pod rules that a stopped proxy leaves in place (fail
/// closed): what real helm renders, and the rendered init container run as the node would run it — in a network
/// namespace holding the rules the dnat mode's proxy installs — so the chart's uninstall step is shown to remove them.
/// </summary>
public sealed class ChartPodRulesUninstallTests
{
    private const string Uninstall = "kubernetes: {dnat: {uninstall: true, command: iptables-nft}}";
    private static readonly HelmChart Chart = HelmChart.MsiProxy;

    [Fact]
    public void The_uninstall_mode_runs_no_proxy_but_the_uninstall_step_on_every_node_and_then_waits()
    {
        var render = Chart.Render("dnat", Uninstall);
        var spec = (IDictionary<string, object?>)YamlValues.At(render.Single("DaemonSet"), "spec.template.spec")!;
        Assert.Equal(true, spec["hostNetwork"]); // the rules are in the node's network namespace
        Assert.Equal(false, spec["automountServiceAccountToken"]);

        var init = (IDictionary<string, object?>)Assert.Single((List<object?>)spec["initContainers"]!)!;
        Assert.Equal("uninstall-pod-rules", init["name"]);
        Assert.Equal("msi-proxy:0.1.0", init["image"]);
        Assert.False(init.ContainsKey("command"), "the image's entrypoint (/app/MsiProxy) runs the subcommand");
        Assert.Equal(["uninstall-pod-rules", "--MsiProxy:Kubernetes:Dnat:Command=iptables-nft"], Strings(init["args"]));
        Assert.Equal(0L, YamlValues.At(init, "securityContext.runAsUser"));
        Assert.Equal(["NET_ADMIN", "NET_RAW"], Strings(YamlValues.At(init, "securityContext.capabilities.add")));
        Assert.Equal(["ALL"], Strings(YamlValues.At(init, "securityContext.capabilities.drop")));
        Assert.Equal(false, YamlValues.At(init, "securityContext.allowPrivilegeEscalation"));
        var volumes = ((List<object?>)spec["volumes"]!).Cast<IDictionary<string, object?>>().ToDictionary(v => (string)v["name"]!);
        Assert.Equal("/run/xtables.lock", YamlValues.At(volumes["xtables-lock"], "hostPath.path"));

        // The one container only waits: no proxy, no port, no capability, not root.
        var waiting = (IDictionary<string, object?>)Assert.Single((List<object?>)spec["containers"]!)!;
        Assert.Equal(["sleep", "infinity"], Strings(waiting["command"]));
        Assert.False(waiting.ContainsKey("ports"));
        Assert.False(waiting.ContainsKey("securityContext") && YamlValues.Map(waiting, "securityContext").ContainsKey("runAsUser"));
        Assert.Equal(["ALL"], Strings(YamlValues.At(waiting, "securityContext.capabilities.drop")));
        Assert.Equal(true, YamlValues.At(spec, "securityContext.runAsNonRoot"));

        // No helm test would pass (no proxy answers), so none is rendered; NOTES say what to do next.
        Assert.Empty(render.TestPods);
        var notes = Chart.Notes("dnat", Uninstall);
        Assert.Contains("REMOVING THE POD RULES", notes, StringComparison.Ordinal);
        Assert.Contains($"rollout status daemonset/{Chart.FullName}", notes, StringComparison.Ordinal);
        Assert.Contains($"helm uninstall {HelmChart.Release}", notes, StringComparison.Ordinal);

        // And the running dnat mode tells how to get there.
        Assert.Contains("--set kubernetes.dnat.uninstall=true", Chart.Notes("dnat"), StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task The_rendered_uninstall_step_removes_the_rules_the_rendered_proxy_installs()
    {
        Skip.If(Environment.UserName != "root" || !File.Exists("/usr/sbin/iptables-nft"), "needs root and iptables-nft (network namespaces)");
        var ns = $"msxc-node-{Guid.NewGuid():N}"[..16];
        try
        {
            await MustAsync("ip", "netns", "add", ns);
            var inNode = new NetnsCommandRunner(ns);

            // The rules the dnat mode's proxy installs, with the options it reads from the render.
            var dnat = new ProxyPod(Chart.Render("dnat", "kubernetes: {dnat: {command: iptables-nft}}")).Options.Kubernetes.Dnat;
            Assert.NotEmpty(await new PodRules(inNode, dnat).EnsureAsync(CancellationToken.None));
            Assert.Contains(PodRules.DropChain, (await inNode.RunAsync("iptables-nft-save", [], CancellationToken.None)).Output, StringComparison.Ordinal);

            // The uninstall mode's init container, as the node runs it: the image's entrypoint with the rendered args and env.
            var spec = YamlValues.At(Chart.Render("dnat", Uninstall).Single("DaemonSet"), "spec.template.spec")!;
            var init = (IDictionary<string, object?>)((List<object?>)YamlValues.At(spec, "initContainers")!).Single()!;
            Assert.False(init.ContainsKey("env"));
            var step = await inNode.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll"), .. Strings(init["args"])], CancellationToken.None);

            Assert.True(step.Succeeded, step.Describe());
            Assert.StartsWith("removed jump mangle/FORWARD -> MSIPROXY-POD-DROP", step.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("MSIPROXY", (await inNode.RunAsync("iptables-nft-save", [], CancellationToken.None)).Output, StringComparison.Ordinal);
        }
        finally
        {
            await new ProcessCommandRunner().RunAsync("ip", ["netns", "del", ns], CancellationToken.None);
        }
    }

    private static List<string> Strings(object? list) => ((List<object?>)list!).Cast<string>().ToList();

    private static async Task MustAsync(string program, params string[] arguments)
    {
        var result = await new ProcessCommandRunner().RunAsync(program, arguments, CancellationToken.None);
        Assert.True(result.Succeeded, $"{program} {string.Join(' ', arguments)}: {result.Describe()}");
    }

    /// <summary>Every command inside the test's namespace, as the init container's commands run in the node's.</summary>
    private sealed class NetnsCommandRunner(string ns) : ICommandRunner
    {
        public Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput, CancellationToken cancellationToken) =>
            new ProcessCommandRunner().RunAsync("ip", ["netns", "exec", ns, command, .. arguments], standardInput, cancellationToken);
    }
}
