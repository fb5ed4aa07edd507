using System.Diagnostics;

namespace MsiProxy.Docker;

/// <summary>Runs a program on the host (here: nsenter + iptables). An interface so tests can see the exact commands.</summary>
internal interface IHostCommands
{
    Task<ExecResult> RunAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken);
}

internal sealed class HostCommands : IHostCommands
{
    public async Task<ExecResult> RunAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        return new ExecResult(process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }
}

/// <summary>
/// Linux containers: one DNAT rule in the container's own network namespace (entered through its PID) sends
/// 169.254.169.254:80 to the proxy. Nothing changes on the host, the rule dies with the container, and the container
/// needs no tools or privileges. Idempotent: rules pointing elsewhere are deleted, the wanted one is checked (-C)
/// before it is added. Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN) and the host's pid namespace for nsenter.
/// </summary>
internal sealed class LinuxDnatWiring(IHostCommands host) : IContainerWiring
{
    public const string MetadataAddress = "169.254.169.254";

    public string Mode => "Linux";

    public async Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken)
    {
        if (container.Pid <= 0)
        {
            return new(false, "the container has no running process to enter");
        }

        var stale = await RulesPointingElsewhereAsync(container, proxy, cancellationToken).ConfigureAwait(false);
        if (stale.Error is not null)
        {
            return new(false, stale.Error);
        }

        foreach (var rule in stale.Rules)
        {
            var deleted = await IptablesAsync(container, ["-t", "nat", .. rule], cancellationToken).ConfigureAwait(false);
            if (!deleted.Succeeded)
            {
                return new(false, $"iptables -D failed ({deleted.ExitCode}): {deleted.Stderr.Trim()}");
            }
        }

        var check = await IptablesAsync(container, ["-t", "nat", "-C", .. Rule(proxy)], cancellationToken).ConfigureAwait(false);
        if (check.Succeeded)
        {
            return new(true, stale.Rules.Count > 0 ? $"re-pointed to {proxy}" : $"unchanged ({proxy})");
        }

        var added = await IptablesAsync(container, ["-t", "nat", "-A", .. Rule(proxy)], cancellationToken).ConfigureAwait(false);
        return added.Succeeded
            ? new(true, stale.Rules.Count > 0 ? $"re-pointed to {proxy}" : $"wired to {proxy}")
            : new(false, $"iptables -A failed ({added.ExitCode}): {added.Stderr.Trim()}");
    }

    public async Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken)
    {
        if (container.Pid <= 0)
        {
            return new(true, "the container is gone, and its rule with it");
        }

        var removed = 0;
        while (removed < 16 && (await IptablesAsync(container, ["-t", "nat", "-C", .. Rule(proxy)], cancellationToken).ConfigureAwait(false)).Succeeded)
        {
            var deleted = await IptablesAsync(container, ["-t", "nat", "-D", .. Rule(proxy)], cancellationToken).ConfigureAwait(false);
            if (!deleted.Succeeded)
            {
                return new(false, $"iptables -D failed ({deleted.ExitCode}): {deleted.Stderr.Trim()}");
            }

            removed++;
        }

        return new(true, removed > 0 ? "removed" : "unchanged");
    }

    /// <summary>The rule, as given to -A/-C/-D (after the chain option).</summary>
    public static string[] Rule(ProxyEndpoint proxy) =>
        ["OUTPUT", "-d", MetadataAddress + "/32", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", proxy.ToString()];

    private async Task<(List<string[]> Rules, string? Error)> RulesPointingElsewhereAsync(ContainerInfo container, ProxyEndpoint proxy,
        CancellationToken cancellationToken)
    {
        var listed = await IptablesAsync(container, ["-t", "nat", "-S", "OUTPUT"], cancellationToken).ConfigureAwait(false);
        if (!listed.Succeeded)
        {
            return ([], $"iptables -S failed ({listed.ExitCode}): {listed.Stderr.Trim()}");
        }

        // iptables -S prints "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.18.0.2:80".
        var stale = new List<string[]>();
        foreach (var line in listed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length > 2 && words[0] == "-A" && words.Contains(MetadataAddress + "/32") && words.Contains("DNAT")
                && !line.EndsWith("--to-destination " + proxy, StringComparison.Ordinal))
            {
                stale.Add(["-D", .. words[1..]]);
            }
        }

        return (stale, null);
    }

    private Task<ExecResult> IptablesAsync(ContainerInfo container, IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        host.RunAsync("nsenter", ["-t", container.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-n", "iptables", "-w", .. arguments],
            cancellationToken);
}
