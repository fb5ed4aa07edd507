using System.Diagnostics;
using MsiProxy.Configuration;
using MsiProxy.Interception;
using MsiProxy.Interception.Kubernetes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>
/// The DNAT rule in network namespaces this test creates: "node" and "pod" joined by a veth pair (10.251.7.0/24, inside the
/// namespaces only), a tiny HTTP server in "node" standing in for the proxy, the rule installed in "node" by the real
/// <see cref="DnatRuleService"/>. Nothing runs in the host namespace; the namespaces are deleted even when the test fails.
/// </summary>
public sealed class DnatRuleTests
{
    private const string NodeAddress = "10.251.7.1";
    private const string PodAddress = "10.251.7.2";
    private const int ProxyPort = 8090;

    // Answers with the caller's address and the path: proves the source (the pod) survives DNAT.
    private const string EchoServer = """
        import http.server, sys
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = f"{self.client_address[0]} {self.path}".encode()
                self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def log_message(self, *a): pass
        s = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), H)
        print("ready", flush=True)
        s.serve_forever()
        """;

    [NetnsFact]
    public async Task Pod_traffic_to_imds_reaches_the_node_proxy_with_its_own_source_and_the_rule_goes_on_shutdown()
    {
        var suffix = Guid.NewGuid().ToString("N")[..6];
        var node = $"msxk-node-{suffix}";
        var pod = $"msxk-pod-{suffix}";
        Process? server = null;
        try
        {
            await Run("ip", "netns", "add", node);
            await Run("ip", "netns", "add", pod);
            await Run("ip", "-n", node, "link", "add", $"cnimsx{suffix[..3]}", "type", "veth", "peer", "name", "eth0", "netns", pod);
            await Run("ip", "-n", node, "addr", "add", $"{NodeAddress}/24", "dev", $"cnimsx{suffix[..3]}");
            await Run("ip", "-n", node, "link", "set", $"cnimsx{suffix[..3]}", "up");
            await Run("ip", "-n", node, "link", "set", "lo", "up");
            await Run("ip", "-n", pod, "addr", "add", $"{PodAddress}/24", "dev", "eth0");
            await Run("ip", "-n", pod, "link", "set", "eth0", "up");
            await Run("ip", "-n", pod, "link", "set", "lo", "up");
            await Run("ip", "-n", pod, "route", "add", "default", "via", NodeAddress);

            server = Process.Start(new ProcessStartInfo("ip", ["netns", "exec", node, "python3", "-c", EchoServer, NodeAddress, ProxyPort.ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            Assert.Equal("ready", await server.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(20)));

            var options = new MsiProxyOptions();
            options.Kubernetes.Dnat = new DnatOptions { Enabled = true, Interface = "cnimsx+", ProxyAddress = NodeAddress, ProxyPort = ProxyPort };
            var rule = new DnatRule(new NetnsCommandRunner(node), options.Kubernetes.Dnat);
            var service = new DnatRuleService(rule, Options.Create(options), TimeProvider.System, NullLogger<DnatRuleService>.Instance);

            // Before: the pod's request to IMDS goes nowhere.
            Assert.NotEqual(0, (await Curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", 2)).ExitCode);

            await service.StartAsync(CancellationToken.None);
            await service.StartAsync(CancellationToken.None); // idempotent: -C before -A
            var installed = await Run("ip", "netns", "exec", node, "iptables", "-t", "nat", "-S", "PREROUTING");
            Assert.Single(installed.Output.Split('\n'), l => l.Contains("169.254.169.254", StringComparison.Ordinal));
            Assert.Contains("-i cnimsx+", installed.Output, StringComparison.Ordinal);
            Assert.Contains($"--to-destination {NodeAddress}:{ProxyPort}", installed.Output, StringComparison.Ordinal);
            var output = await Run("ip", "netns", "exec", node, "iptables", "-t", "nat", "-S", "OUTPUT");
            Assert.DoesNotContain("169.254.169.254", output.Output, StringComparison.Ordinal);

            var reached = await Curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", 5);
            Assert.Equal(0, reached.ExitCode);
            Assert.Equal($"{PodAddress} /metadata/identity/oauth2/token?api-version=2018-02-01", reached.Output);

            // The node's own traffic is not redirected (it has no route to IMDS in this namespace, so it just fails).
            var own = await Curl(node, "http://169.254.169.254/metadata/instance?api-version=2021-02-01", 2);
            Assert.NotEqual(0, own.ExitCode);

            // A flushed rule comes back on the next reconcile.
            await Run("ip", "netns", "exec", node, "iptables", "-t", "nat", "-F", "PREROUTING");
            Assert.False(await rule.IsInstalledAsync(CancellationToken.None));
            Assert.True(await rule.EnsureAsync(CancellationToken.None));
            Assert.False(await rule.EnsureAsync(CancellationToken.None));
            Assert.Equal(0, (await Curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", 5)).ExitCode);
            await service.StopAsync(CancellationToken.None);
            Assert.False(await rule.IsInstalledAsync(CancellationToken.None));
            var after = await Run("ip", "netns", "exec", node, "iptables", "-t", "nat", "-S", "PREROUTING");
            Assert.DoesNotContain("169.254.169.254", after.Output, StringComparison.Ordinal);
            Assert.NotEqual(0, (await Curl(pod, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01", 2)).ExitCode);
        }
        finally
        {
            if (server is { HasExited: false })
            {
                server.Kill(entireProcessTree: true);
                await server.WaitForExitAsync();
            }

            server?.Dispose();
            await new ProcessCommandRunner().RunAsync("ip", ["netns", "del", pod], CancellationToken.None);
            await new ProcessCommandRunner().RunAsync("ip", ["netns", "del", node], CancellationToken.None);
        }
    }

    [Fact]
    public async Task An_iptables_failure_other_than_rule_missing_is_an_error_naming_the_exit_code_and_message()
    {
        // /bin/sh rejects "-w" with exit 2 and a message, as iptables does for a bad rule or missing NET_ADMIN.
        var rule = new DnatRule(new ProcessCommandRunner(), new DnatOptions
        {
            Enabled = true, Interface = "cni+", ProxyAddress = NodeAddress, ProxyPort = ProxyPort, Command = "/bin/sh",
        });
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => rule.EnsureAsync(CancellationToken.None));
        Assert.Contains("exit 2", error.Message, StringComparison.Ordinal);
        Assert.Contains("-w", error.Message, StringComparison.Ordinal);
    }

    private static Task<CommandResult> Curl(string ns, string url, int seconds) =>
        new ProcessCommandRunner().RunAsync("ip", ["netns", "exec", ns, "curl", "-sS", "--noproxy", "*", "-m", seconds.ToString(), url], CancellationToken.None);

    private static async Task<CommandResult> Run(params string[] command)
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
