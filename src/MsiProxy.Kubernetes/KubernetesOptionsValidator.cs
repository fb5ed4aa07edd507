using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;

namespace MsiProxy.Kubernetes;

/// <summary>Start-up validation of <c>MsiProxy:Kubernetes</c>; only checked when discovery is enabled.</summary>
internal sealed partial class KubernetesOptionsValidator : IValidateOptions<MsiProxyOptions>
{
    private const string Prefix = "MsiProxy:Kubernetes";

    public ValidateOptionsResult Validate(string? name, MsiProxyOptions options)
    {
        var k = options.Kubernetes;
        if (!k.Enabled)
        {
            return ValidateOptionsResult.Success;
        }

        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(k.NodeName))
        {
            errors.Add($"{Prefix}:NodeName is required (or set NODE_NAME from the downward API: spec.nodeName)");
        }

        if (k.ApiServer is { Length: > 0 } api)
        {
            if (!Uri.TryCreate(api, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            {
                errors.Add($"{Prefix}:ApiServer = '{api}' is not an http(s) URL");
            }
            else if (uri.Scheme == Uri.UriSchemeHttp && !uri.IsLoopback)
            {
                errors.Add($"{Prefix}:ApiServer = '{api}' must use https (plain http is accepted for loopback only)");
            }
        }

        Positive(errors, "ResyncInterval", k.ResyncInterval);
        Positive(errors, "WatchTimeout", k.WatchTimeout);
        Positive(errors, "ReconnectDelay", k.ReconnectDelay);
        Positive(errors, "MaxReconnectDelay", k.MaxReconnectDelay);
        Positive(errors, "BindingsPollInterval", k.BindingsPollInterval);
        Positive(errors, "SecretRefreshInterval", k.SecretRefreshInterval);

        var dnat = k.Dnat;
        if (dnat.Enabled)
        {
            if (!IPAddress.TryParse(dnat.ProxyAddress, out var proxy) || proxy.AddressFamily != AddressFamily.InterNetwork)
            {
                errors.Add($"{Prefix}:Dnat:ProxyAddress = '{dnat.ProxyAddress}' must be the node's IPv4 address (status.hostIP)");
            }

            if (dnat.ProxyPort is < 1 or > 65535)
            {
                errors.Add($"{Prefix}:Dnat:ProxyPort = {dnat.ProxyPort} is not a port");
            }

            if (string.IsNullOrWhiteSpace(dnat.Interface) && string.IsNullOrWhiteSpace(dnat.SourceCidr))
            {
                errors.Add($"{Prefix}:Dnat needs Interface (e.g. cni+) or SourceCidr (the pod CIDR) so only pod traffic is redirected");
            }

            if (!string.IsNullOrWhiteSpace(dnat.Interface) && !InterfacePattern().IsMatch(dnat.Interface))
            {
                errors.Add($"{Prefix}:Dnat:Interface = '{dnat.Interface}' is not an interface name or prefix+ (at most 15 characters)");
            }

            if (!string.IsNullOrWhiteSpace(dnat.SourceCidr)
                && (!AddressRange.TryParse(dnat.SourceCidr, out var cidr) || cidr.Network.AddressFamily != AddressFamily.InterNetwork))
            {
                errors.Add($"{Prefix}:Dnat:SourceCidr = '{dnat.SourceCidr}' is not an IPv4 CIDR block");
            }

            Positive(errors, "Dnat:ReconcileInterval", dnat.ReconcileInterval);
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, string key, TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            errors.Add($"{Prefix}:{key} = {value} must be positive");
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.-]{1,15}\\+?$")]
    private static partial Regex InterfacePattern();
}
