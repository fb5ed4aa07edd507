using System.Net;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Interception.Linux;

namespace MsiProxy.Docker;

/// <summary>Start-up checks of <c>MsiProxy:Docker</c>: a bad value stops the process (exit 2) naming the key, not a later pass.</summary>
internal sealed class DockerMonitorOptionsValidator : IValidateOptions<DockerMonitorOptions>
{
    public ValidateOptionsResult Validate(string? name, DockerMonitorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!string.IsNullOrWhiteSpace(options.ProxyAddress) && !IPAddress.TryParse(options.ProxyAddress, out _))
        {
            failures.Add($"MsiProxy:Docker:ProxyAddress = '{options.ProxyAddress}' is not an IP address");
        }

        if (options.Wiring == WiringMode.Linux && string.IsNullOrWhiteSpace(options.ProxyAddress))
        {
            failures.Add("MsiProxy:Docker:ProxyAddress is required with MsiProxy:Docker:Wiring=Linux: the host address the proxy's client "
                + "listener is bound to, where the host rules send containers' IMDS traffic");
        }

        if (options.ProxyPort is < 1 or > 65535)
        {
            failures.Add($"MsiProxy:Docker:ProxyPort = {options.ProxyPort} is not a port");
        }

        var rules = options.HostRules;
        for (var i = 0; i < rules.Interfaces.Count; i++)
        {
            if (!HostRules.IsInterfacePattern(rules.Interfaces[i]))
            {
                failures.Add($"MsiProxy:Docker:HostRules:Interfaces:{i} = '{rules.Interfaces[i]}' is not an interface name or pattern such as br-+");
            }
        }

        for (var i = 0; i < rules.ExemptSources.Count; i++)
        {
            if (!AddressRange.TryParse(rules.ExemptSources[i], out _))
            {
                failures.Add($"MsiProxy:Docker:HostRules:ExemptSources:{i} = '{rules.ExemptSources[i]}' is not an address or CIDR");
            }
        }

        if (string.IsNullOrWhiteSpace(rules.Command) || rules.Command.Any(char.IsWhiteSpace))
        {
            failures.Add($"MsiProxy:Docker:HostRules:Command = '{rules.Command}' is not a program name such as iptables-nft");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
