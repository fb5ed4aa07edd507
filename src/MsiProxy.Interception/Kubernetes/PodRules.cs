using System.Globalization;
using System.Text;
using MsiProxy.Clients;
using MsiProxy.Configuration;

namespace MsiProxy.Interception.Kubernetes;

/// <summary>
/// The Linux transparent path of Kubernetes mode, in the node's network namespace, in two chains MsiProxy owns. Pod
/// traffic is what arrives from the pod interface (<c>Dnat:Interface</c>) and/or from the pod CIDR (<c>Dnat:SourceCidr</c>):
/// <list type="bullet">
/// <item><c>nat MSIPROXY-POD-DNAT</c>, jumped to from <c>PREROUTING -d 169.254.169.254/32</c>: pods' TCP port 80 is DNAT-ed
/// to the proxy on the node IP. PREROUTING sees only traffic arriving from an interface, so the node's own calls (the
/// proxy's upstream, <c>hostNetwork</c> pods) still reach IMDS; DNAT keeps the pod's source address.</item>
/// <item><c>mangle MSIPROXY-POD-DROP</c>, jumped to from <c>FORWARD -d 169.254.169.254/32</c>: every pod packet to IMDS
/// that is still being forwarded — other ports, other protocols, port 80 itself if the nat rule was flushed — is
/// dropped. In mangle, not filter: CNIs and kube-proxy ACCEPT pod traffic in filter FORWARD (Calico's policy chains,
/// KUBE-FORWARD, flannel's pod-CIDR rules), some of them insisting on being first, which would end the packet's way
/// through filter before a drop there; nothing ACCEPTs in mangle FORWARD, and a DROP in any table is final.</item>
/// </list>
/// The chains are replaced atomically (<c>iptables-restore --noflush</c>) only when they differ, the jumps checked (-C)
/// before they are inserted, so any number of proxy restarts leaves one copy. <b>Fail closed:</b> nothing is removed when
/// the proxy stops or dies — the DNAT target then has no listener and pods get refused connections, never IMDS.
/// <see cref="RemoveAsync"/> is the explicit uninstall (<c>MsiProxy uninstall-pod-rules</c>).
/// </summary>
public sealed class PodRules(ICommandRunner runner, DnatOptions options)
{
    public const string MetadataAddress = "169.254.169.254/32";
    public const string NatChain = "MSIPROXY-POD-DNAT";
    public const string DropChain = "MSIPROXY-POD-DROP";

    /// <summary>The comment of the one PREROUTING rule earlier versions installed (and deleted on shutdown: fail open).</summary>
    public const string LegacyComment = "msi-proxy: IMDS from pods to the node-local proxy";

    private const string Wait = "5";

    private static readonly Jump[] Jumps =
    [
        new("mangle", "FORWARD", ["-d", MetadataAddress, "-m", "comment", "--comment", "msi-proxy: no way from pods to IMDS but the proxy", "-j", DropChain]),
        new("nat", "PREROUTING", ["-d", MetadataAddress, "-m", "comment", "--comment", "msi-proxy: IMDS from pods to the proxy", "-j", NatChain]),
    ];

    private static readonly (string Table, string Chain)[] Chains = [("nat", NatChain), ("mangle", DropChain)];

    private string Command => string.IsNullOrWhiteSpace(options.Command) ? "iptables" : options.Command.Trim();

    /// <summary>
    /// The two chains in iptables-restore syntax, each rule written as <c>iptables -S</c> prints it (so the installed
    /// chains can be compared with what is wanted). Needs a valid <see cref="DnatOptions"/> (the validator's job).
    /// </summary>
    public static string BuildChains(DnatOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var match = new StringBuilder();
        if (!string.IsNullOrWhiteSpace(options.SourceCidr))
        {
            var cidr = AddressRange.Parse(options.SourceCidr.Trim());
            match.Append(CultureInfo.InvariantCulture, $" -s {cidr.Network}/{cidr.PrefixLength}");
        }

        if (!string.IsNullOrWhiteSpace(options.Interface))
        {
            match.Append(CultureInfo.InvariantCulture, $" -i {options.Interface.Trim()}");
        }

        return new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"*nat\n:{NatChain} - [0:0]\n")
            .Append(CultureInfo.InvariantCulture, $"-A {NatChain}{match} -p tcp -m tcp --dport 80 -j DNAT --to-destination {options.ProxyAddress}:{options.ProxyPort}\n")
            .Append("COMMIT\n")
            .Append(CultureInfo.InvariantCulture, $"*mangle\n:{DropChain} - [0:0]\n")
            .Append(CultureInfo.InvariantCulture, $"-A {DropChain}{match} -j DROP\n")
            .Append("COMMIT\n")
            .ToString();
    }

    /// <summary>What is installed when the rules are in place, as <c>iptables -S</c> lines (for logs and tests).</summary>
    public static IReadOnlyList<string> Describe(DnatOptions options) =>
    [
        .. BuildChains(options).Split('\n').Where(l => l.StartsWith("-A ", StringComparison.Ordinal)),
        .. Jumps.Select(j => $"-t {j.Table} -A {j.Chain} {string.Join(' ', j.Spec.Select(Quote))}"),
    ];

    /// <summary>
    /// Puts the rules in place: the chains when they differ, the jumps when missing, and an earlier version's rule
    /// removed. Returns what it changed (empty: everything was in place); throws when an iptables command fails.
    /// </summary>
    public async Task<IReadOnlyList<string>> EnsureAsync(CancellationToken cancellationToken)
    {
        var chains = BuildChains(options);
        var rules = chains.Split('\n').Where(l => l.StartsWith("-A ", StringComparison.Ordinal)).ToList();
        var changes = new List<string>();

        // Rewritten only when they differ: a rewrite resets the rules' packet counters, which operators watch.
        if (!await ChainsMatchAsync(rules, cancellationToken).ConfigureAwait(false))
        {
            var restored = await runner.RunAsync(Command + "-restore", ["-w", Wait, "--noflush"], chains, cancellationToken).ConfigureAwait(false);
            if (!restored.Succeeded)
            {
                throw new InvalidOperationException($"{Command}-restore could not write the pod rules ({restored.Describe()})");
            }

            changes.Add("chains written");
        }

        foreach (var jump in Jumps)
        {
            if ((await IptablesAsync(["-t", jump.Table, "-C", jump.Chain, .. jump.Spec], cancellationToken).ConfigureAwait(false)).Succeeded)
            {
                continue;
            }

            var insert = await IptablesAsync(["-t", jump.Table, "-I", jump.Chain, "1", .. jump.Spec], cancellationToken).ConfigureAwait(false);
            if (!insert.Succeeded)
            {
                throw new InvalidOperationException($"{Command} -t {jump.Table} -I {jump.Chain} failed ({insert.Describe()})");
            }

            changes.Add($"jump added in {jump.Table}/{jump.Chain}");
        }

        changes.AddRange(await RemoveLegacyAsync(cancellationToken).ConfigureAwait(false));
        return changes;
    }

    /// <summary>The uninstall step: every jump to the chains, the chains, an earlier version's rule. Returns what was removed.</summary>
    public async Task<IReadOnlyList<string>> RemoveAsync(CancellationToken cancellationToken)
    {
        var removed = new List<string>();
        foreach (var jump in Jumps)
        {
            // Every copy (a crash between -C and -I elsewhere could have left two).
            for (var attempt = 0; attempt < 16; attempt++)
            {
                if (!(await IptablesAsync(["-t", jump.Table, "-C", jump.Chain, .. jump.Spec], cancellationToken).ConfigureAwait(false)).Succeeded)
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

        foreach (var (table, chain) in Chains)
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

        removed.AddRange(await RemoveLegacyAsync(cancellationToken).ConfigureAwait(false));
        return removed;
    }

    /// <summary>Whether both chains hold exactly <paramref name="rules"/> (in the form iptables -S prints them).</summary>
    private async Task<bool> ChainsMatchAsync(IReadOnlyList<string> rules, CancellationToken cancellationToken)
    {
        foreach (var (table, chain) in Chains)
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

    /// <summary>
    /// Deletes the PREROUTING DNAT rule of earlier versions (found by its comment), which a crashed proxy of such a version
    /// may have left behind: with these chains in place it is redundant, without them it would outlive the uninstall.
    /// </summary>
    private async Task<IReadOnlyList<string>> RemoveLegacyAsync(CancellationToken cancellationToken)
    {
        var listed = await IptablesAsync(["-t", "nat", "-S", "PREROUTING"], cancellationToken).ConfigureAwait(false);
        if (!listed.Succeeded)
        {
            throw new InvalidOperationException($"{Command} -t nat -S PREROUTING failed ({listed.Describe()})");
        }

        var removed = new List<string>();
        foreach (var line in listed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var words = Words(line);
            if (words is not ["-A", "PREROUTING", .. var spec] || !spec.Contains(LegacyComment) || !spec.Contains("DNAT"))
            {
                continue;
            }

            var deleted = await IptablesAsync(["-t", "nat", "-D", "PREROUTING", .. spec], cancellationToken).ConfigureAwait(false);
            if (!deleted.Succeeded)
            {
                throw new InvalidOperationException($"{Command} could not delete an earlier version's rule '{line}' ({deleted.Describe()})");
            }

            removed.Add("earlier version's rule nat/PREROUTING");
        }

        return removed;
    }

    /// <summary>An <c>iptables -S</c> line as arguments: words split at spaces, a double-quoted comment kept as one.</summary>
    private static List<string> Words(string line)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var quoted = false;
        foreach (var c in line)
        {
            if (c == '"')
            {
                quoted = !quoted;
            }
            else if (c == ' ' && !quoted)
            {
                if (word.Length > 0)
                {
                    words.Add(word.ToString());
                    word.Clear();
                }
            }
            else
            {
                word.Append(c);
            }
        }

        if (word.Length > 0)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    private Task<CommandResult> IptablesAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken) =>
        runner.RunAsync(Command, ["-w", Wait, .. arguments], cancellationToken);

    private static string Quote(string word) => word.Contains(' ', StringComparison.Ordinal) ? $"\"{word}\"" : word;

    private sealed record Jump(string Table, string Chain, string[] Spec);
}
