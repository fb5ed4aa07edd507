using System.Net;

namespace MsiProxy.Docker;

/// <summary>A running container as the monitor needs it: labels, addresses per network and its main process.</summary>
internal sealed record ContainerInfo(
    string Id,
    string Name,
    IReadOnlyDictionary<string, string> Labels,
    IReadOnlyDictionary<string, IPAddress> Networks,
    int Pid)
{
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

/// <summary>One engine event (type container or network); <see cref="ContainerId"/> is the container it concerns.</summary>
internal sealed record ContainerEvent(string Type, string Action, string ContainerId)
{
    private static readonly HashSet<string> Relevant =
        ["start", "restart", "die", "stop", "kill", "destroy", "connect", "disconnect", "rename", "update"];

    /// <summary>Events that can change who is a client, its address or the upstreams.</summary>
    public bool ChangesState => Relevant.Contains(Action.Split(':', 2)[0].Trim());
}

internal sealed record ExecResult(long ExitCode, string Stdout, string Stderr)
{
    public bool Succeeded => ExitCode == 0;
}
