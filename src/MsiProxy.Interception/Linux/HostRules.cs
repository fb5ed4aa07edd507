using System.Globalization;
using System.Text;
using MsiProxy.Clients;

namespace MsiProxy.Interception.Linux;

/// <summary>
/// Host-level interception on a Linux Docker host, in two chains MsiProxy owns (in the host's network namespace):
/// <list type="bullet">
/// <item><c>nat MSIPROXY-IMDS-DNAT</c>, jumped to from <c>PREROUTING -d 169.254.169.254/32</c>: TCP port 80 arriving from
/// a Docker bridge is DNAT-ed to the proxy. PREROUTING sees only traffic that arrives from an interface, so the host's own
/// calls (the proxy's upstream) still reach IMDS; DNAT keeps the container's source address.</item>
/// <item><c>filter MSIPROXY-IMDS-DROP</c>, jumped to from <c>DOCKER-USER -d 169.254.169.254/32</c> (Docker's place for
/// filter rules): every other forwarded packet to IMDS is dropped — other ports, other protocols, bridges not redirected yet.</item>
/// </list>
/// Exempt sources (msiserviceclients) RETURN first in both. The chains are replaced atomically (iptables-restore --noflush),
/// the jumps checked (-C) before they are inserted, so applying twice changes nothing. Nothing is removed when the proxy
/// stops: with the proxy gone, the DNAT-ed connections are refused (fail closed). <see cref="RemoveAsync"/> is the
/// explicit uninstall (<c>MsiProxy uninstall-host-rules</c>).
/// </summary>
public sealed class HostRules(ICommandRunner runner, HostRulesOptions options)
{
    public const string MetadataAddress = "169.254.169.254/32";
    public const string NatChain = "MSIPROXY-IMDS-DNAT";
    public const string FilterChain = "MSIPROXY-IMDS-DROP";
    public const string DockerUserChain = "DOCKER-USER";
    private const string Wait = "5";

    /// <summary>How a state starts when everything is installed but Docker does not (yet) jump to DOCKER-USER.</summary>
    public const string NoDockerUserJump = "FORWARD does not jump to " + DockerUserChain;

    private static readonly Jump[] Jumps =
    [
        new("filter", DockerUserChain, ["-d", MetadataAddress, "-m", "comment", "--comment", "msi-proxy: no way to IMDS but the proxy", "-j", FilterChain]),
        new("nat", "PREROUTING", ["-d", MetadataAddress, "-m", "comment", "--comment", "msi-proxy: IMDS from containers to the proxy", "-j", NatChain]),
    ];

    private string Command => string.IsNullOrWhiteSpace(options.Command) ? "iptables" : options.Command.Trim();

    /// <summary>
    /// The two chains in iptables-restore syntax. Without a proxy address nothing is redirected, but the drop rule is
    /// still there: containers reach nothing rather than IMDS.
    /// </summary>
    public static string BuildChains(ProxyEndpoint? proxy, IEnumerable<string> interfaces, IEnumerable<AddressRange> exempt)
    {
        ArgumentNullException.ThrowIfNull(interfaces);
        ArgumentNullException.ThrowIfNull(exempt);
        var sources = exempt.Where(e => e.Network.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork).Distinct()
            .Select(e => $"{e.Network}/{e.PrefixLength}").Order(StringComparer.Ordinal).ToList();
        var text = new StringBuilder();
        text.Append("*filter\n").Append(CultureInfo.InvariantCulture, $":{FilterChain} - [0:0]\n");
        foreach (var source in sources)
        {
            text.Append(CultureInfo.InvariantCulture, $"-A {FilterChain} -s {source} -m comment --comment \"msi-proxy: exempt\" -j RETURN\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"-A {FilterChain} -j DROP\nCOMMIT\n");
        text.Append("*nat\n").Append(CultureInfo.InvariantCulture, $":{NatChain} - [0:0]\n");
        foreach (var source in sources)
        {
            text.Append(CultureInfo.InvariantCulture, $"-A {NatChain} -s {source} -m comment --comment \"msi-proxy: exempt\" -j RETURN\n");
        }

        if (proxy is not null)
        {
            foreach (var name in interfaces.Where(IsInterfacePattern).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                text.Append(CultureInfo.InvariantCulture, $"-A {NatChain} -i {name} -p tcp -m tcp --dport 80 -j DNAT --to-destination {proxy}\n");
            }
        }

        return text.Append("COMMIT\n").ToString();
    }

    /// <summary>Installs <paramref name="chains"/> (from <see cref="BuildChains"/>) and the jumps to them; reports what is in place.</summary>
    public async Task<HostInterceptionState> ApplyAsync(string chains, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(chains);
        var rules = chains.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("-A ", StringComparison.Ordinal)).ToList();

        // Docker creates DOCKER-USER at start and keeps what is in it; before Docker ever ran, create it ourselves.
        if (!(await IptablesAsync(["-t", "filter", "-S", DockerUserChain], cancellationToken).ConfigureAwait(false)).Succeeded)
        {
            var created = await IptablesAsync(["-t", "filter", "-N", DockerUserChain], cancellationToken).ConfigureAwait(false);
            if (!created.Succeeded)
            {
                return new(false, $"{Command} -N {DockerUserChain} failed ({created.Describe()})", rules, now);
            }
        }

        // Rewritten only when they differ: a rewrite resets the rules' packet counters, which operators watch.
        var changes = new List<string>();
        if (!await ChainsMatchAsync(rules, cancellationToken).ConfigureAwait(false))
        {
            var restored = await runner.RunAsync(Command + "-restore", ["-w", Wait, "--noflush"], chains, cancellationToken).ConfigureAwait(false);
            if (!restored.Succeeded)
            {
                return new(false, $"{Command}-restore failed ({restored.Describe()})", rules, now);
            }

            changes.Add("chains written");
        }

        foreach (var jump in Jumps)
        {
            var check = await IptablesAsync(["-t", jump.Table, "-C", jump.Chain, .. jump.Spec], cancellationToken).ConfigureAwait(false);
            if (check.Succeeded)
            {
                continue;
            }

            var insert = await IptablesAsync(["-t", jump.Table, "-I", jump.Chain, "1", .. jump.Spec], cancellationToken).ConfigureAwait(false);
            if (!insert.Succeeded)
            {
                return new(false, $"{Command} -t {jump.Table} -I {jump.Chain} failed ({insert.Describe()})", rules, now);
            }

            changes.Add("jump added in " + jump.Chain);
        }

        rules.AddRange(Jumps.Select(j => $"-t {j.Table} -A {j.Chain} {string.Join(' ', j.Spec.Select(Quote))}"));

        // DOCKER-USER only filters if Docker jumps to it (not with dockerd --iptables=false).
        var forward = await IptablesAsync(["-t", "filter", "-C", "FORWARD", "-j", DockerUserChain], cancellationToken).ConfigureAwait(false);
        if (!forward.Succeeded)
        {
            return new(false, NoDockerUserJump + " (dockerd not started yet, or --iptables=false?): containers' other traffic to IMDS is not dropped",
                rules, now);
        }

        if (!chains.Contains("-j DNAT", StringComparison.Ordinal))
        {
            return new(false, "no proxy address to redirect to: set MsiProxy:Docker:ProxyAddress; until then containers reach nothing at 169.254.169.254",
                rules, now);
        }

        return new(true, changes.Count > 0 ? "installed (" + string.Join(", ", changes) + ")" : "in place", rules, now);
    }

    /// <summary>Whether both chains hold exactly <paramref name="rules"/> (in the form iptables -S prints them).</summary>
    private async Task<bool> ChainsMatchAsync(IReadOnlyList<string> rules, CancellationToken cancellationToken)
    {
        foreach (var (table, chain) in new[] { ("filter", FilterChain), ("nat", NatChain) })
        {
            var listed = await IptablesAsync(["-t", table, "-S", chain], cancellationToken).ConfigureAwait(false);
            var wanted = rules.Where(r => r.StartsWith($"-A {chain} ", StringComparison.Ordinal));
            var present = listed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => l.StartsWith("-A ", StringComparison.Ordinal));
            if (!listed.Succeeded || !present.SequenceEqual(wanted))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The uninstall step: deletes every jump to the chains, then the chains. Returns what was removed.</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        foreach (var jump in Jumps)
        {
            // Every copy (an older version or a crash between -C and -I elsewhere could have left two).
            for (var attempt = 0; attempt < 16; attempt++)
            {
                var check = await IptablesAsync(["-t", jump.Table, "-C", jump.Chain, .. jump.Spec], cancellationToken).ConfigureAwait(false);
                if (!check.Succeeded)
                {
                    break;
                }

                var deleted = await IptablesAsync(["-t", jump.Table, "-D", jump.Chain, .. jump.Spec], cancellationToken).ConfigureAwait(false);
                if (!deleted.Succeeded)
                {
                    throw new InvalidOperationException($"{Command} -t {jump.Table} -D {jump.Chain} failed ({deleted.Describe()})");
                }

                removed.Add($"jump {jump.Table}/{jump.Chain} -> {jump.Spec[^1]}");
            }
        }

        foreach (var (table, chain) in new[] { ("nat", NatChain), ("filter", FilterChain) })
        {
            if (!(await IptablesAsync(["-t", table, "-S", chain], cancellationToken).ConfigureAwait(false)).Succeeded)
            {
                continue; // not there
            }

            foreach (var step in new[] { "-F", "-X" })
            {
                var result = await IptablesAsync(["-t", table, step, chain], cancellationToken).ConfigureAwait(false);
                if (!result.Succeeded)
                {
                    throw new InvalidOperationException($"{Command} -t {table} {step} {chain} failed ({result.Describe()})");
                }
            }

            removed.Add($"chain {table}/{chain}");
        }

        return removed;
    }

    /// <summary>An iptables interface name or pattern (<c>br-+</c>): letters, digits and <c>-_.@</c>, at most 15 characters.</summary>
    public static bool IsInterfacePattern(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 15 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@' or '+'))
        {
            return false;
        }

        var plus = name.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 || plus == name.Length - 1;
    }

    /// <summary>Whether iptables' <c>-i <paramref name="pattern"/></c> matches <paramref name="name"/> (a trailing + is a prefix).</summary>
    public static bool Matches(string pattern, string name) =>
        pattern.EndsWith('+') ? name.StartsWith(pattern[..^1], StringComparison.Ordinal) : pattern == name;

    private Task<CommandResult> IptablesAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        runner.RunAsync(Command, ["-w", Wait, .. arguments], cancellationToken);

    private static string Quote(string word) => word.Contains(' ', StringComparison.Ordinal) ? $"\"{word}\"" : word;

    private sealed record Jump(string Table, string Chain, string[] Spec);
}
