namespace MsiProxy.Interception.Linux;

/// <summary>Section <c>MsiProxy:Docker:HostRules</c>: the Linux host-level interception (see docs/monitor.md).</summary>
public sealed class HostRulesOptions
{
    public const string SectionName = "MsiProxy:Docker:HostRules";

    /// <summary>Docker's own bridge names: the default bridge and every user network that keeps its generated name.</summary>
    public static readonly IReadOnlyList<string> DefaultInterfaces = ["docker0", "br-+"];

    /// <summary>
    /// Inbound interfaces (iptables patterns) whose traffic to 169.254.169.254:80 is redirected to the proxy, in addition
    /// to the bridge of every network the engine reports. Empty: <see cref="DefaultInterfaces"/>.
    /// </summary>
    public List<string> Interfaces { get; set; } = [];

    /// <summary>Sources (address or CIDR) that may reach IMDS themselves, besides msiserviceclient containers.</summary>
    public List<string> ExemptSources { get; set; } = [];

    /// <summary>Exempt containers labelled <c>msi-proxy.role=msiserviceclient</c> (they exist to reach IMDS).</summary>
    public bool ExemptMsiServiceClients { get; set; } = true;

    /// <summary>The iptables binary (<c>iptables</c>, <c>iptables-nft</c>, <c>iptables-legacy</c>): it must be the backend
    /// Docker uses on this host. <c>&lt;Command&gt;-restore</c> must exist next to it.</summary>
    public string Command { get; set; } = "iptables";

    public IReadOnlyList<string> EffectiveInterfaces => Interfaces.Count > 0 ? Interfaces : DefaultInterfaces;
}
