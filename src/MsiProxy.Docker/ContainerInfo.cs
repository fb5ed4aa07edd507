using System.Net;
using MsiProxy.Clients;

namespace MsiProxy.Docker;

/// <summary>
/// A running container as the monitor needs it: labels, addresses per network, its main process and — when its
/// environment sets the App Service protocol's <c>IDENTITY_HEADER</c> — the digest of that secret (never the secret).
/// </summary>
internal sealed record ContainerInfo(
    string Id,
    string Name,
    IReadOnlyDictionary<string, string> Labels,
    IReadOnlyDictionary<string, IPAddress> Networks,
    int Pid)
{
    public IdentityHeaderDigest? IdentityHeader { get; init; }

    /// <summary>The digest of <c>IDENTITY_HEADER</c> in a container's <c>KEY=value</c> environment list, if it sets one.</summary>
    public static IdentityHeaderDigest? IdentityHeaderIn(IEnumerable<string>? environment)
    {
        const string Prefix = "IDENTITY_HEADER=";
        var entry = environment?.LastOrDefault(e => e.StartsWith(Prefix, StringComparison.Ordinal)); // the last one wins, as in the process
        return entry is not null && entry.Length > Prefix.Length ? IdentityHeaderDigest.Of(entry[Prefix.Length..]) : null;
    }

    public string ShortId => Id.Length > 12 ? Id[..12] : Id;

    /// <summary>The container's address on <paramref name="network"/>, or on its only network when none is named.</summary>
    public IPAddress? AddressOn(string? network)
    {
        if (network is not null)
        {
            return Networks.GetValueOrDefault(network);
        }

        return Networks.Count == 1 ? Networks.Values.First() : null;
    }
}

/// <summary>
/// An engine network: its subnets and gateways, and for the bridge driver the host interface its containers' traffic
/// arrives on (<c>docker0</c>, <c>br-&lt;id&gt;</c> or the name set with <c>com.docker.network.bridge.name</c>).
/// </summary>
internal sealed record NetworkInfo(string Id, string Name, string? BridgeInterface, IReadOnlyList<AddressRange> Subnets,
    IReadOnlyList<IPAddress> Gateways);

/// <summary>One engine event (type container or network); <see cref="ContainerId"/> is the container it concerns, if any.</summary>
internal sealed record ContainerEvent(string Type, string Action, string ContainerId)
{
    private static readonly HashSet<string> ContainerActions =
        ["start", "restart", "die", "stop", "kill", "destroy", "rename", "update"];

    private static readonly HashSet<string> NetworkActions = ["create", "destroy", "connect", "disconnect"];

    /// <summary>Events that can change who is a client, its address, the upstreams or the bridges to intercept.</summary>
    public bool ChangesState => (Type == "network" ? NetworkActions : ContainerActions).Contains(Action.Split(':', 2)[0].Trim());
}

internal sealed record ExecResult(long ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
}
