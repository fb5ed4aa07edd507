using System.Net;

namespace MsiProxy.Interception;

/// <summary>Where a client container's 169.254.169.254:80 must lead.</summary>
public sealed record ProxyEndpoint(IPAddress Address, int Port)
{
    public override string ToString() => $"{Address}:{Port}";
}

/// <summary>The outcome of one wiring attempt; <see cref="Detail"/> is what the script or iptables said.</summary>
public sealed record WiringOutcome(bool Succeeded, string Detail);

/// <summary>The state of host-level interception after a pass, as /admin/wiring and /readyz show it.</summary>
/// <param name="InPlace">Every rule is installed: no container can reach IMDS except through the proxy.</param>
/// <param name="Rules">The rules as installed (iptables-save syntax), for operators.</param>
public sealed record HostInterceptionState(bool InPlace, string Detail, IReadOnlyList<string> Rules, DateTimeOffset CheckedAt);

