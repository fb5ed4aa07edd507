using MsiProxy.Configuration;

namespace MsiProxy.Interception.Kubernetes;

/// <summary>
/// The one nat rule of the Linux transparent path:
/// <c>PREROUTING [-i cni+] [-s podCIDR] -p tcp -d 169.254.169.254 --dport 80 -j DNAT --to-destination nodeIP:port</c>.
/// PREROUTING only sees traffic arriving from an interface, so the node's own requests (OUTPUT) still go to the real IMDS.
/// DNAT keeps the source address, which is how the proxy knows which pod is calling.
/// </summary>
internal sealed class DnatRule(ICommandRunner runner, DnatOptions options)
{
    public const string Comment = "msi-proxy: IMDS from pods to the node-local proxy";
    private const string Chain = "PREROUTING";

    public IReadOnlyList<string> Specification { get; } = BuildSpecification(options);

    private string Command => string.IsNullOrWhiteSpace(options.Command) ? "iptables" : options.Command;

    public async Task<bool> IsInstalledAsync(CancellationToken cancellationToken)
    {
        var result = await RunAsync("-C", cancellationToken).ConfigureAwait(false);
        return result.ExitCode switch
        {
            0 => true,
            1 => false, // "Bad rule (does a matching rule exist in that chain?)"
            _ => throw Failure("check", result),
        };
    }

    /// <summary>Adds the rule unless it is already there; returns true when it had to be added.</summary>
    public async Task<bool> EnsureAsync(CancellationToken cancellationToken)
    {
        if (await IsInstalledAsync(cancellationToken).ConfigureAwait(false))
        {
            return false;
        }

        var result = await RunAsync("-A", cancellationToken).ConfigureAwait(false);
        return result.ExitCode == 0 ? true : throw Failure("add", result);
    }

    /// <summary>Deletes every copy of the rule (a crash between -C and -A elsewhere could have left two).</summary>
    public async Task RemoveAsync(CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 16 && await IsInstalledAsync(cancellationToken).ConfigureAwait(false); attempt++)
        {
            var result = await RunAsync("-D", cancellationToken).ConfigureAwait(false);
            if (result.ExitCode != 0)
            {
                throw Failure("delete", result);
            }
        }
    }

    private Task<CommandResult> RunAsync(string operation, CancellationToken cancellationToken) =>
        runner.RunAsync(Command, ["-w", "5", "-t", "nat", operation, Chain, .. Specification], cancellationToken);

    private InvalidOperationException Failure(string what, CommandResult result) =>
        new($"{Command} could not {what} the IMDS DNAT rule (exit {result.ExitCode}): {result.Error.Trim()} {result.Output.Trim()}".TrimEnd());

    private static string[] BuildSpecification(DnatOptions options)
    {
        List<string> spec = [];
        if (!string.IsNullOrWhiteSpace(options.Interface))
        {
            spec.AddRange(["-i", options.Interface]);
        }

        if (!string.IsNullOrWhiteSpace(options.SourceCidr))
        {
            spec.AddRange(["-s", options.SourceCidr]);
        }

        spec.AddRange(["-p", "tcp", "-d", "169.254.169.254/32", "--dport", "80", "-m", "comment", "--comment", Comment,
            "-j", "DNAT", "--to-destination", $"{options.ProxyAddress}:{options.ProxyPort}"]);
        return [.. spec];
    }
}
