using System.Globalization;
using MsiProxy.Testing.Net;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// The network namespace of a running container of the rig's dockerd, for running this machine's programs (the real
/// SDK clients on the host's dotnet and node) with the container's network and nothing else of it: its source address,
/// its default route through the bridge into the VM, where the host rules meet it as they meet the container's own
/// processes. Found by the container's PID; the wrapper refuses to run anything unless the namespace it entered is the
/// one found here, which is neither this machine's nor the VM's.
/// </summary>
public sealed class ContainerNamespace : IClientNamespace
{
    private ContainerNamespace(string container, int pid, string identity, string address)
    {
        Container = container;
        Pid = pid;
        Identity = identity;
        Address = address;
    }

    public string Container { get; }

    /// <summary>The container's init process, whose namespace file is entered.</summary>
    public int Pid { get; }

    public string Identity { get; }

    /// <summary>The container's address on its (one) network: the caller address the proxy sees.</summary>
    public string Address { get; }

    public IReadOnlyList<string> Wrapper => TransparentNamespace.GuardedWrapper($"/proc/{Pid}/ns/net", Identity);

    public static ContainerNamespace Of(VmNetwork rig, string container)
    {
        ArgumentNullException.ThrowIfNull(rig);
        var inspected = rig.Docker("inspect", "-f", "{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container);
        var fields = inspected.Output.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (!inspected.Succeeded || fields.Length != 2 || !int.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid <= 0)
        {
            throw new InvalidOperationException($"container {container} does not run on one network: {inspected.Describe()}");
        }

        var identity = NamespaceOf($"/proc/{pid}/ns/net");
        if (identity == NamespaceOf("/proc/self/ns/net") || identity == NamespaceOf("/run/netns/" + rig.VmNamespace))
        {
            throw new InvalidOperationException($"container {container} shares a namespace it must not ({identity}): not on a bridge network?");
        }

        return new ContainerNamespace(container, pid, identity, fields[1]);
    }

    public override string ToString() => $"{Container} ({Address}, {Identity})";

    private static string NamespaceOf(string path)
    {
        // /run/netns/NAME is a bind mount of the namespace file, not a link: its inode names the namespace.
        var target = new FileInfo(path).LinkTarget;
        return target ?? $"net:[{RigCommand.Run("stat", ["-L", "-c", "%i", path]).Output.Trim()}]";
    }
}
