using System.Globalization;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// Tear-down of one rig, and of rigs an aborted run left behind. A rig's folder holds an owner file (pid and start
/// time of the test process); a rig whose owner no longer runs is abandoned, and a namespace named like a rig with no
/// folder is too. Only what belongs to such a rig is touched: its daemon (pid file), the processes of its containers
/// (their cgroups), the processes inside its two namespaces or naming its folder — each by pid.
/// </summary>
internal static class Leftovers
{
    private const string OwnerFile = "owner";

    /// <remarks>
    /// Written aside and renamed into place: another test process (or a rig starting in parallel in this one) that
    /// cleans up leftovers must never read a half-written owner file, which it would take for an abandoned rig and tear
    /// down while it is being built.
    /// </remarks>
    public static void ClaimOwnership(string directory)
    {
        var claim = Path.Combine(directory, OwnerFile + ".new");
        File.WriteAllText(claim, $"{Environment.ProcessId} {StartTime(Environment.ProcessId)}");
        File.Move(claim, Path.Combine(directory, OwnerFile), overwrite: true);
    }

    public static void RemoveAbandoned()
    {
        if (Directory.Exists(VmNetwork.Root))
        {
            foreach (var directory in Directory.GetDirectories(VmNetwork.Root))
            {
                if (IsAbandoned(directory))
                {
                    TearDown(Path.GetFileName(directory), directory);
                }
            }
        }

        foreach (var line in RigCommand.Run("ip", ["netns", "list"]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            if (name.StartsWith(VmNetwork.NamePrefix, StringComparison.Ordinal) && name.Split('-') is [_, var id, _]
                && !Directory.Exists(Path.Combine(VmNetwork.Root, id)))
            {
                TearDown(id, Path.Combine(VmNetwork.Root, id));
            }
        }
    }

    public static void TearDown(string id, string directory)
    {
        var namespaces = new[] { VmNetwork.NamePrefix + id + "-vm", VmNetwork.NamePrefix + id + "-fab" };
        StopDaemon(Path.Combine(directory, "docker.pid"));
        KillContainerProcesses(Path.Combine(directory, "data", "containers"));
        foreach (var name in namespaces)
        {
            Kill(RigCommand.Run("ip", ["netns", "pids", name]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }

        Kill(ProcessesNaming(directory));
        foreach (var name in namespaces)
        {
            RigCommand.Run("ip", ["netns", "del", name]);
        }

        if (Directory.Exists(directory))
        {
            RigCommand.Run("rm", ["-rf", "--one-file-system", directory]);
        }
    }

    private static bool IsAbandoned(string directory)
    {
        var owner = Path.Combine(directory, OwnerFile);
        if (!File.Exists(owner))
        {
            // Created but never claimed: abandoned once it is clearly not a rig being set up right now.
            return Directory.GetCreationTimeUtc(directory) < DateTime.UtcNow.AddMinutes(-2);
        }

        var words = File.ReadAllText(owner).Split(' ');
        return words.Length != 2 || !int.TryParse(words[0], CultureInfo.InvariantCulture, out var pid) || StartTime(pid) != words[1];
    }

    /// <summary>Field 22 of /proc/PID/stat: tells a live owner from a new process that reused its pid.</summary>
    private static string? StartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static void StopDaemon(string pidFile)
    {
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture, out var pid)
            || !File.Exists($"/proc/{pid}/cmdline") || !File.ReadAllText($"/proc/{pid}/cmdline").Contains("dockerd", StringComparison.Ordinal))
        {
            return;
        }

        RigCommand.Run("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)]);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (File.Exists($"/proc/{pid}/cmdline") && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(100);
        }

        Kill([pid.ToString(CultureInfo.InvariantCulture)]);
    }

    /// <summary>The rig's containers, by the cgroups Docker made for their ids (the daemon may be gone, its shims not).</summary>
    private static void KillContainerProcesses(string containers)
    {
        if (!Directory.Exists(containers))
        {
            return;
        }

        foreach (var id in Directory.GetDirectories(containers).Select(Path.GetFileName).OfType<string>())
        {
            var groups = RigCommand.Run("find", ["/sys/fs/cgroup", "-type", "d", "-name", id]).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var group in groups)
            {
                var procs = Path.Combine(group, "cgroup.procs");
                if (File.Exists(procs))
                {
                    Kill(File.ReadAllLines(procs));
                }
            }

            // The daemon that would have removed the (now empty) cgroups is gone: remove them, once their processes are.
            foreach (var group in groups)
            {
                var deadline = DateTime.UtcNow.AddSeconds(5);
                while (Directory.Exists(group) && !TryRemoveDirectory(group) && DateTime.UtcNow < deadline)
                {
                    Thread.Sleep(100);
                }
            }
        }
    }

    private static bool TryRemoveDirectory(string path)
    {
        try
        {
            Directory.Delete(path); // rmdir(2): a cgroup goes only when it has no processes and no children
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static IEnumerable<string> ProcessesNaming(string directory)
    {
        foreach (var proc in Directory.GetDirectories("/proc"))
        {
            var name = Path.GetFileName(proc);
            if (!name.All(char.IsAsciiDigit) || name == Environment.ProcessId.ToString(CultureInfo.InvariantCulture))
            {
                continue;
            }

            string command;
            try
            {
                command = File.ReadAllText(Path.Combine(proc, "cmdline"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            if (command.Contains(directory + "/", StringComparison.Ordinal))
            {
                yield return name;
            }
        }
    }

    private static void Kill(IEnumerable<string> pids)
    {
        var list = pids.Select(p => p.Trim()).Where(p => p.Length > 0 && p.All(char.IsAsciiDigit)).ToList();
        if (list.Count > 0)
        {
            RigCommand.Run("kill", ["-KILL", .. list]);
        }
    }
}
