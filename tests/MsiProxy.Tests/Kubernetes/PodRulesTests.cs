using System.Diagnostics;
using System.Globalization;
using MsiProxy.Configuration;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>
/// The pod rules in network namespaces this test creates, where the bypass is real: a "fabric" holding 169.254.169.254
/// (a small HTTP server standing in for IMDS on ports 80 and 81), a "node" routing 169.254.169.254 to it with forwarding
/// on (as an AKS node does), and a "pod" behind a veth whose node end matches the rules' interface pattern. A second
/// server on the node's pod-side address stands in for the proxy. The rules are installed in "node" by the real
/// <see cref="PodRulesService"/>; the uninstall is the real <c>MsiProxy uninstall-pod-rules</c> run in "node". Every
/// request carries a marker, and what the fabric saw is asked from the fabric itself. Nothing runs in the host
/// namespace; the namespaces (and the servers) are removed even when the test fails.
/// </summary>
public sealed class PodRulesTests
{
    private const string NodeAddress = "10.251.7.1";
    private const string PodAddress = "10.251.7.2";
    private const string FabricAddress = "10.251.8.1";
    private const string NodeUplinkAddress = "10.251.8.2";
    private const string Imds = "169.254.169.254";
    private const int ProxyPort = 8090;

    // "<name> <caller> <path>" for any path but /seen, which lists the paths seen so far: so a test can ask the fabric
    // what reached it. One listener per port given.
    private const string EchoServer = """
        import http.server, sys, threading
        seen = []
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/seen":
                    body = "\n".join(seen).encode()
                else:
                    seen.append(self.path)
                    body = f"{sys.argv[1]} {self.client_address[0]} {self.path}".encode()
                self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        servers = [http.server.ThreadingHTTPServer((sys.argv[2], int(port)), H) for port in sys.argv[3:]]
        for s in servers[1:]:
            threading.Thread(target=s.serve_forever, daemon=True).start()
        print("ready", flush=True)
        servers[0].serve_forever()
        """;

    [NetnsFact]
    public async Task Pods_reach_imds_only_through_the_proxy_are_refused_while_it_is_stopped_and_only_the_uninstall_step_gives_the_way_back()
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var (fabric, node, pod) = ($"msxk-fab-{suffix}", $"msxk-node-{suffix}", $"msxk-pod-{suffix}");
        var podLink = $"cnimsx{suffix[..3]}";
        var servers = new List<Process>();
        try
        {
            await BuildAsync(fabric, node, pod, podLink);
            servers.Add(await StartEchoAsync(fabric, "imds", Imds, 80, 81));

            // Faithful: with no rules, the pod's calls to 169.254.169.254 (any port) are forwarded to the fabric's IMDS.
            Assert.Equal($"imds {PodAddress} /direct", (await CurlAsync(pod, "/direct")).Output);
            Assert.Equal($"imds {PodAddress} /direct-81", (await CurlAsync(pod, "/direct-81", port: 81)).Output);

            var proxy = await StartEchoAsync(node, "proxy", NodeAddress, ProxyPort);
            servers.Add(proxy);

            // What an earlier version left behind after a crash: its one DNAT rule, which the new rules replace.
            await RunAsync("ip", "netns", "exec", node, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "cnimsx+", "-p", "tcp", "-d", Imds + "/32",
                "--dport", "80", "-m", "comment", "--comment", PodRules.LegacyComment, "-j", "DNAT", "--to-destination", $"{NodeAddress}:{ProxyPort}");

            var options = new MsiProxyOptions();
            // Both matches, the CIDR not in canonical form: what iptables -S prints must still equal what is written.
            options.Kubernetes.Dnat = new DnatOptions
            {
                Enabled = true, Interface = "cnimsx+", SourceCidr = "10.251.7.9/24", ProxyAddress = NodeAddress, ProxyPort = ProxyPort,
            };
            var rules = new PodRules(new NetnsCommandRunner(node), options.Kubernetes.Dnat);
            var service = new PodRulesService(rules, Options.Create(options), TimeProvider.System, NullLogger<PodRulesService>.Instance);
            await service.StartAsync(CancellationToken.None);

            var installed = await MsiProxyRulesAsync(node);
            string[] expected =
            [
                $"-A PREROUTING -d {Imds}/32 -m comment --comment \"msi-proxy: IMDS from pods to the proxy\" -j MSIPROXY-POD-DNAT",
                $"-A MSIPROXY-POD-DNAT -s 10.251.7.0/24 -i cnimsx+ -p tcp -m tcp --dport 80 -j DNAT --to-destination {NodeAddress}:{ProxyPort}",
                $"-A FORWARD -d {Imds}/32 -m comment --comment \"msi-proxy: no way from pods to IMDS but the proxy\" -j MSIPROXY-POD-DROP",
                "-A MSIPROXY-POD-DROP -s 10.251.7.0/24 -i cnimsx+ -j DROP",
            ];
            // One rule per chain, so only the order of the tables (which iptables-save chooses) is left out.
            Assert.Equal(expected.Order(StringComparer.Ordinal), installed.Where(IsRule).Order(StringComparer.Ordinal));
            Assert.DoesNotContain(PodRules.LegacyComment, string.Join('\n', await SaveAsync(node)), StringComparison.Ordinal);
            Assert.Empty(await rules.EnsureAsync(CancellationToken.None)); // in place: read, not rewritten

            // Port 80: the proxy, seeing the pod's own address; IMDS hears nothing of it.
            Assert.Equal($"proxy {PodAddress} /redirected", (await CurlAsync(pod, "/redirected")).Output);
            // Another port: dropped (no answer until curl gives up), counted by the drop rule, unseen by IMDS.
            var dropped = await CurlAsync(pod, "/other-port", port: 81, seconds: 2);
            Assert.Equal(28, dropped.ExitCode);
            Assert.True(await DroppedPacketsAsync(node) > 0, "the drop rule counted nothing");
            // The node's own calls (the proxy's upstream) still reach IMDS: PREROUTING and FORWARD never see them.
            Assert.Equal($"imds {NodeUplinkAddress} /node-own", (await CurlAsync(node, "/node-own")).Output);

            // A restarted proxy finds the same rules and adds no second copy.
            await service.StopAsync(CancellationToken.None);
            service = new PodRulesService(rules, Options.Create(options), TimeProvider.System, NullLogger<PodRulesService>.Instance);
            await service.StartAsync(CancellationToken.None);
            Assert.Equal(installed.Where(IsRule), (await MsiProxyRulesAsync(node)).Where(IsRule));

            // The proxy stops (and its listener goes): the rules stay, the pod is refused at once, IMDS hears nothing.
            await service.StopAsync(CancellationToken.None);
            await StopAsync(proxy);
            var refused = await CurlAsync(pod, "/proxy-stopped", verbose: true);
            Assert.Equal(7, refused.ExitCode);
            Assert.Contains($"connect to {Imds} port 80 failed: Connection refused", refused.Error, StringComparison.Ordinal);
            Assert.Equal(installed.Where(IsRule), (await MsiProxyRulesAsync(node)).Where(IsRule));

            // Even a flushed nat table does not open the way: port 80 is then forwarded, and dropped.
            await RunAsync("ip", "netns", "exec", node, "iptables", "-t", "nat", "-F", "PREROUTING");
            Assert.Equal(28, (await CurlAsync(pod, "/nat-flushed", seconds: 2)).ExitCode);
            Assert.Equal(["jump added in nat/PREROUTING"], await rules.EnsureAsync(CancellationToken.None));
            Assert.Empty(await rules.EnsureAsync(CancellationToken.None));

            var fabricSaw = (await CurlAsync(fabric, "/seen")).Output.Split('\n');
            Assert.Equal(["/direct", "/direct-81", "/node-own"], fabricSaw);

            // The explicit uninstall step (the real subcommand, on the node) removes all of it: the pod reaches IMDS again.
            var uninstalled = await UninstallAsync(node);
            Assert.Equal(0, uninstalled.ExitCode);
            Assert.Equal("removed jump mangle/FORWARD -> MSIPROXY-POD-DROP, jump nat/PREROUTING -> MSIPROXY-POD-DNAT, chain nat/MSIPROXY-POD-DNAT, "
                + "chain mangle/MSIPROXY-POD-DROP", uninstalled.Output.Trim());
            Assert.Empty(await MsiProxyRulesAsync(node));
            Assert.Equal($"imds {PodAddress} /after-uninstall", (await CurlAsync(pod, "/after-uninstall")).Output);
            Assert.Equal("no MsiProxy pod rules were installed", (await UninstallAsync(node)).Output.Trim());
        }
        finally
        {
            foreach (var server in servers)
            {
                await StopAsync(server);
                server.Dispose();
            }

            foreach (var ns in new[] { pod, node, fabric })
            {
                await new ProcessCommandRunner().RunAsync("ip", ["netns", "del", ns], CancellationToken.None);
            }
        }
    }

    [Fact]
    public async Task An_iptables_failure_is_an_error_naming_the_exit_code_and_message()
    {
        // /bin/sh rejects "-w" (the chains cannot be listed: they are written), and there is no /bin/sh-restore.
        var rules = new PodRules(new ProcessCommandRunner(), new DnatOptions
        {
            Enabled = true, Interface = "cni+", ProxyAddress = NodeAddress, ProxyPort = ProxyPort, Command = "/bin/sh",
        });
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => rules.EnsureAsync(CancellationToken.None));
        Assert.StartsWith($"/bin/sh-restore could not write the pod rules (exit {ProcessCommandRunner.NotFound}:", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_uninstall_subcommand_reports_an_iptables_failure_with_exit_1_and_a_bad_configuration_with_exit_2()
    {
        using var output = new StringWriter();
        Assert.Equal(1, await PodRulesCommand.UninstallAsync(["--MsiProxy:Kubernetes:Dnat:Command=/bin/sh"], output, new ProcessCommandRunner()));
        Assert.StartsWith("error: /bin/sh -t nat -S PREROUTING failed (exit 2", output.ToString(), StringComparison.Ordinal);

        using var invalid = new StringWriter();
        Assert.Equal(2, await PodRulesCommand.UninstallAsync(["--MsiProxy:Kubernetes:Dnat:ReconcileInterval=soon"], invalid, new ProcessCommandRunner()));
        Assert.Contains("error: the configuration is invalid", invalid.ToString(), StringComparison.Ordinal);
    }

    private static bool IsRule(string line) => line.StartsWith("-A", StringComparison.Ordinal);

    private static async Task BuildAsync(string fabric, string node, string pod, string podLink)
    {
        foreach (var ns in new[] { fabric, node, pod })
        {
            await RunAsync("ip", "netns", "add", ns);
            await RunAsync("ip", "-n", ns, "link", "set", "lo", "up");
        }

        await RunAsync("ip", "-n", fabric, "addr", "add", Imds + "/32", "dev", "lo");
        await RunAsync("ip", "-n", fabric, "link", "add", "eth0", "type", "veth", "peer", "name", "uplink", "netns", node);
        await RunAsync("ip", "-n", fabric, "addr", "add", FabricAddress + "/24", "dev", "eth0");
        await RunAsync("ip", "-n", fabric, "link", "set", "eth0", "up");
        await RunAsync("ip", "-n", fabric, "route", "add", "10.251.7.0/24", "via", NodeUplinkAddress);
        await RunAsync("ip", "-n", node, "addr", "add", NodeUplinkAddress + "/24", "dev", "uplink");
        await RunAsync("ip", "-n", node, "link", "set", "uplink", "up");
        await RunAsync("ip", "-n", node, "route", "add", Imds + "/32", "via", FabricAddress);
        await RunAsync("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1");
        await RunAsync("ip", "-n", node, "link", "add", podLink, "type", "veth", "peer", "name", "eth0", "netns", pod);
        await RunAsync("ip", "-n", node, "addr", "add", NodeAddress + "/24", "dev", podLink);
        await RunAsync("ip", "-n", node, "link", "set", podLink, "up");
        await RunAsync("ip", "-n", pod, "addr", "add", PodAddress + "/24", "dev", "eth0");
        await RunAsync("ip", "-n", pod, "link", "set", "eth0", "up");
        await RunAsync("ip", "-n", pod, "route", "add", "default", "via", NodeAddress);
    }

    private static async Task<Process> StartEchoAsync(string ns, string name, string address, params int[] ports)
    {
        var server = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", ns, "python3", "-c", EchoServer, name, address,
            .. ports.Select(p => p.ToString(CultureInfo.InvariantCulture))])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        Assert.Equal("ready", await server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)));
        return server;
    }

    private static async Task StopAsync(Process server)
    {
        if (!server.HasExited)
        {
            server.Kill(entireProcessTree: true);
        }

        await server.WaitForExitAsync();
    }

    /// <summary>curl from <paramref name="ns"/> to 169.254.169.254 (never from this machine's namespace: ns is one the test made).</summary>
    private static Task<CommandResult> CurlAsync(string ns, string path, int port = 80, int seconds = 5, bool verbose = false) =>
        new ProcessCommandRunner().RunAsync("ip", ["netns", "exec", ns, "curl", verbose ? "-svS" : "-sS", "--noproxy", "*",
            "-m", seconds.ToString(CultureInfo.InvariantCulture), $"http://{Imds}:{port}{path}"], CancellationToken.None);

    private static async Task<List<string>> SaveAsync(string ns) =>
        [.. (await RunAsync("ip", "netns", "exec", ns, "iptables-save")).Output.Split('\n').Select(l => l.Trim())];

    /// <summary>The MsiProxy lines of the node's tables (chain declarations, jumps and rules).</summary>
    private static async Task<List<string>> MsiProxyRulesAsync(string ns) =>
        [.. (await SaveAsync(ns)).Where(l => l.Contains("MSIPROXY", StringComparison.Ordinal) && !l.StartsWith('#'))];

    /// <summary>Packets the drop rule counted (iptables -S -v prints "-A MSIPROXY-POD-DROP … -c PACKETS BYTES -j DROP").</summary>
    private static async Task<long> DroppedPacketsAsync(string ns)
    {
        var line = (await RunAsync("ip", "netns", "exec", ns, "iptables", "-t", "mangle", "-S", PodRules.DropChain, "-v")).Output.Split('\n')
            .Single(l => l.EndsWith("-j DROP", StringComparison.Ordinal)).Split(' ');
        return long.Parse(line[Array.IndexOf(line, "-c") + 1], CultureInfo.InvariantCulture);
    }

    private static Task<CommandResult> UninstallAsync(string ns) =>
        new ProcessCommandRunner().RunAsync("ip", ["netns", "exec", ns, "dotnet", Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll"), "uninstall-pod-rules"],
            CancellationToken.None);

    private static async Task<CommandResult> RunAsync(params string[] command)
    {
        var result = await new ProcessCommandRunner().RunAsync(command[0], command[1..], CancellationToken.None);
        Assert.True(result.ExitCode == 0, $"{string.Join(' ', command)} failed ({result.ExitCode}): {result.Error}");
        return result;
    }

    /// <summary>Runs every command inside one network namespace, as the DaemonSet's commands run on the node.</summary>
    private sealed class NetnsCommandRunner(string ns) : ICommandRunner
    {
        public Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput, CancellationToken cancellationToken) =>
            new ProcessCommandRunner().RunAsync("ip", ["netns", "exec", ns, command, .. arguments], standardInput, cancellationToken);
    }
}
