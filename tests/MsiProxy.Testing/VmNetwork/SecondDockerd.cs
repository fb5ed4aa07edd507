using System.Globalization;
using System.Text.RegularExpressions;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// A dockerd of the rig's own, inside the VM namespace, so its bridges, NAT and forwarding live there and not on this
/// machine. It has its own socket, data root, exec root and pid file, and a private mount namespace in which the paths
/// containerd and its shims hard-code (<c>/run/containerd</c>, <c>/run/docker</c>, <c>/etc/docker</c>) are the rig's
/// folders, D-Bus is unreachable (no host firewalld) and <c>/etc/resolv.conf</c> names a server no packet can reach.
/// No registry is reachable: images are imported.
/// </summary>
public sealed partial class SecondDockerd : IAsyncDisposable
{
    private readonly string _directory;
    private readonly ChildProcess _process;

    private SecondDockerd(string directory, ChildProcess process)
    {
        _directory = directory;
        _process = process;
    }

    public string Socket => Path.Combine(_directory, "docker.sock");

    public string Endpoint => "unix://" + Socket;

    public string Log => _process.Output;

    public static async Task<SecondDockerd> StartAsync(string directory, string vmNamespace)
    {
        foreach (var folder in new[] { "run-containerd", "run-docker", "etc-docker", "no-dbus", "data", "exec" })
        {
            Directory.CreateDirectory(Path.Combine(directory, folder));
        }

        await File.WriteAllTextAsync(Path.Combine(directory, "resolv.conf"), "nameserver 192.0.2.53\n").ConfigureAwait(false); // TEST-NET-1: no route
        Directory.CreateDirectory("/run/containerd"); // the mount point; an empty folder if this machine never ran containerd

        // unshare -m execs the shell, the shell execs dockerd: the process we hold is dockerd itself.
        var script = string.Join(" && ",
            $"mount --bind {directory}/run-containerd /run/containerd",
            $"mount --bind {directory}/run-docker /run/docker",
            $"mount --bind {directory}/etc-docker /etc/docker",
            $"mount --bind {directory}/no-dbus /run/dbus",
            $"mount --bind {directory}/resolv.conf /etc/resolv.conf",
            $"exec dockerd --host unix://{directory}/docker.sock --data-root {directory}/data --exec-root {directory}/exec "
            + $"--pidfile {directory}/docker.pid --userland-proxy=false");
        EnsureMountPoints();
        var process = ChildProcess.Start("unshare", ["-m", "--propagation", "private", "--", "sh", "-c", script], ChildProcess.InNamespace("/run/netns/" + vmNamespace),
            new Dictionary<string, string?> { ["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=/nonexistent" });
        var daemon = new SecondDockerd(directory, process);
        try
        {
            await process.WaitForLineAsync(ApiListening(), TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            return daemon;
        }
        catch
        {
            await daemon.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The docker CLI against this daemon.</summary>
    public RigResult Docker(params string[] arguments) => Docker(TimeSpan.FromSeconds(60), arguments);

    public RigResult Docker(TimeSpan timeout, params string[] arguments) => RigCommand.Run("docker", ["-H", Endpoint, .. arguments], timeout);

    /// <summary>Imports a busybox image (Debian's busybox-static plus the applets the tests use); no registry involved.</summary>
    public void ImportBusybox(string image)
    {
        var root = Path.Combine(_directory, "busybox-rootfs");
        foreach (var folder in new[] { "bin", "tmp", "etc", "proc", "sys", "dev" })
        {
            Directory.CreateDirectory(Path.Combine(root, folder));
        }

        File.Copy("/bin/busybox", Path.Combine(root, "bin", "busybox"), overwrite: true);
        foreach (var applet in new[] { "sh", "sleep", "wget", "cat", "echo", "timeout", "ip", "nc" })
        {
            var link = Path.Combine(root, "bin", applet);
            if (!File.Exists(link))
            {
                File.CreateSymbolicLink(link, "busybox");
            }
        }

        var imported = RigCommand.Run("sh", ["-c", $"tar -C {root} -c . | docker -H {Endpoint} import -c 'ENV PATH=/bin' - {image}"]);
        if (!imported.Succeeded)
        {
            throw new InvalidOperationException($"could not import {image} ({imported.Describe()})");
        }
    }

    /// <summary>Removes every container (SIGKILL, no stop timeout), then stops the daemon: SIGTERM, SIGKILL after 20 s.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            var ids = Docker(TimeSpan.FromSeconds(20), "ps", "-aq").Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (ids.Length > 0)
            {
                Docker(TimeSpan.FromSeconds(60), ["rm", "-f", .. ids]);
            }

            RigCommand.Run("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
            await _process.WaitForExitAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false); // then SIGKILL, below
        }

        await _process.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Bind-mount targets must exist: /run/dbus may not on a machine without D-Bus.</summary>
    private static void EnsureMountPoints()
    {
        foreach (var folder in new[] { "/run/docker", "/etc/docker", "/run/dbus" })
        {
            Directory.CreateDirectory(folder);
        }

        if (!File.Exists("/etc/resolv.conf"))
        {
            throw new InvalidOperationException("/etc/resolv.conf is missing: the rig's dockerd needs a file to mount over");
        }
    }

    [GeneratedRegex("API listen on ")]
    private static partial Regex ApiListening();
}
