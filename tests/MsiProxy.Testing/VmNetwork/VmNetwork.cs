using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

using MsiProxy.Testing.Processes;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// An Azure VM's network, built on this machine with nothing leaving it:
/// <list type="bullet">
/// <item>a namespace playing the <b>fabric</b>: <c>169.254.169.254</c> on its loopback, the real IMDS emulator listening
/// there on port 80 (and <see cref="OtherImdsPort"/>, to see other ports dropped), its control API on the fabric's own
/// 127.0.0.1;</item>
/// <item>a namespace playing the <b>VM</b>: its NIC (<see cref="VmAddress"/>) joined to the fabric by a veth pair, a route
/// <c>169.254.169.254/32</c> via the fabric end and no other route out, and a <see cref="SecondDockerd"/> of its own,
/// which turns on forwarding and sets <c>FORWARD DROP</c> as on a fresh VM.</item>
/// </list>
/// So an unlabelled container on a normal bridge reaches the fabric's IMDS through Docker's masquerade, arriving
/// with the VM's address — the bypass MsiProxy's host rules close. Names are unique per run; everything is removed on
/// dispose, also after a failure, and leftovers of an aborted run are removed before a new rig starts.
/// </summary>
public sealed partial class VmNetwork : IAsyncDisposable
{
    public const string MetadataAddress = "169.254.169.254";
    public const string FabricAddress = "10.99.0.1";
    public const string VmAddress = "10.99.0.4";
    public const int OtherImdsPort = 81;
    public const string Image = "msiproxy-rig/busybox:1";

    /// <summary>The one user-assigned identity the fabric's IMDS has.</summary>
    public const string ClientId = "3b7b2a61-5c1e-4f0e-9d0a-5f6e7d8c9b0a";

    internal const string NamePrefix = "msxr-";
    private const int ControlPort = 5081;
    private readonly List<IAsyncDisposable> _owned = [];

    private VmNetwork(string id, string directory)
    {
        Id = id;
        Directory = directory;
    }

    /// <summary>Folder of every rig's state (daemon data, sockets, owner file).</summary>
    public static string Root { get; } = Path.Combine(Path.GetTempPath(), "msiproxy-rig");

    public string Id { get; }

    public string Directory { get; }

    public string FabricNamespace => NamePrefix + Id + "-fab";

    public string VmNamespace => NamePrefix + Id + "-vm";

    public SecondDockerd Dockerd { get; private set; } = null!;

    public ChildProcess Emulator { get; private set; } = null!;

    /// <summary>Why a rig cannot be built here (not root, no dockerd…), or null.</summary>
    public static string? WhyUnavailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the VM network rig needs Linux network namespaces";
        }

        if (Environment.UserName != "root")
        {
            return $"the VM network rig needs root (network namespaces, a second dockerd); running as {Environment.UserName}";
        }

        foreach (var tool in new[] { "dockerd", "docker", "ip", "iptables", "iptables-restore", "nsenter", "unshare" })
        {
            if (!RigCommand.Run("sh", ["-c", "command -v " + tool]).Succeeded)
            {
                return $"{tool} is not installed (apt-get install docker.io iproute2 iptables util-linux)";
            }
        }

        return File.Exists("/bin/busybox") ? null : "/bin/busybox is missing (apt-get install busybox-static)";
    }

    /// <summary>Builds the fabric, the VM and its dockerd, and starts the emulator; about 2–3 s.</summary>
    public static async Task<VmNetwork> StartAsync()
    {
        Leftovers.RemoveAbandoned();
        var id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))[..5];
        var directory = Path.Combine(Root, id);
        System.IO.Directory.CreateDirectory(directory);
        Leftovers.ClaimOwnership(directory);
        var rig = new VmNetwork(id, directory);
        try
        {
            rig.BuildNetwork();
            rig.Emulator = await rig.StartEmulatorAsync().ConfigureAwait(false);
            rig.Dockerd = await SecondDockerd.StartAsync(directory, rig.VmNamespace).ConfigureAwait(false);
            rig._owned.Add(rig.Dockerd);
            rig.Dockerd.ImportBusybox(Image);
            return rig;
        }
        catch
        {
            await rig.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The docker CLI against the VM's daemon.</summary>
    public RigResult Docker(params string[] arguments) => Dockerd.Docker(arguments);

    /// <summary>Runs a command in the VM's network namespace (iptables, sysctl…).</summary>
    public RigResult InVm(params string[] command) => RigCommand.Run("nsenter", ["--net=/run/netns/" + VmNamespace, "--", .. command]);

    /// <summary>Starts a program in the VM's network namespace; it is killed when the rig is disposed (or earlier by the test).</summary>
    public ChildProcess StartInVm(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null) =>
        Own(ChildProcess.Start(program, arguments, ChildProcess.InNamespace("/run/netns/" + VmNamespace),
            environment?.ToDictionary(p => p.Key, string? (p) => p.Value)));

    /// <summary>Starts a program in a running container's network namespace (with this machine's files: no image needed).</summary>
    public ChildProcess StartInContainer(string container, string program, IEnumerable<string> arguments)
    {
        var pid = Docker("inspect", "-f", "{{.State.Pid}}", container).Output.Trim();
        if (!int.TryParse(pid, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) || number <= 0)
        {
            throw new InvalidOperationException($"container {container} does not run (pid '{pid}')");
        }

        return Own(ChildProcess.Start(program, arguments, ChildProcess.InNamespace($"/proc/{number}/ns/net")));
    }

    /// <summary>A relay in front of the VM's dockerd whose event streams can be held back (see <see cref="DockerEventsValve"/>); removed with the rig.</summary>
    public DockerEventsValve StartEventsValve() => Own(DockerEventsValve.Start(Dockerd, Path.Combine(Directory, "events-valve.sock")));

    /// <summary>
    /// MsiProxy (from the test output) in a namespace of the rig: the VM's (<paramref name="container"/> null) or a
    /// container's. The fixture guard runs first: every upstream must be the fabric's IMDS (this rig's emulator) or an
    /// address in <paramref name="testNetworkAddresses"/> — never anything outside the rig.
    /// </summary>
    public ChildProcess StartMsiProxy(IReadOnlyList<string> upstreams, IEnumerable<System.Net.IPAddress> testNetworkAddresses,
        IEnumerable<string> arguments, string? container = null)
    {
        ArgumentNullException.ThrowIfNull(upstreams);
        Proxy.UpstreamGuard.Check(upstreams, [System.Net.IPAddress.Parse(MetadataAddress), .. testNetworkAddresses]);
        List<string> all = [Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll"), .. arguments];
        for (var i = 0; i < upstreams.Count; i++)
        {
            all.Add($"--MsiProxy:Upstreams:{i}={upstreams[i]}");
        }

        return container is null ? StartInVm("dotnet", all) : StartInContainer(container, "dotnet", all);
    }

    /// <summary>HTTP from the test into the VM's namespace (e.g. the proxy's management listener on the VM's 127.0.0.1).</summary>
    public HttpClient VmClient(Uri baseAddress) => NamespaceHttp.Client(VmNamespace, baseAddress);

    /// <summary>Every request the fabric's IMDS has received, as its control API reports them.</summary>
    public async Task<IReadOnlyList<JsonElement>> ImdsRequestsAsync()
    {
        using var control = NamespaceHttp.Client(FabricNamespace, new Uri($"http://127.0.0.1:{ControlPort}"));
        var requests = await control.GetFromJsonAsync<JsonElement>("/emulator/requests").ConfigureAwait(false);
        return [.. requests.EnumerateArray()];
    }

    /// <summary>The VM's netfilter tables as iptables-save prints them.</summary>
    public string IptablesSave() => InVm("iptables-save").Output;

    /// <summary>What a failing test prints: the VM's tables, and the output of the daemon and of every process the rig started.</summary>
    public string Diagnostics() =>
        $"--- iptables-save (VM)\n{IptablesSave()}\n--- dockerd\n{Tail(Dockerd?.Log)}"
        + string.Concat(_owned.OfType<ChildProcess>().Select(p => $"\n--- {p.Description}\n{Tail(p.Output)}"));

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            try
            {
                await owned.DisposeAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException or IOException)
            {
                // Keep tearing down: what is left is found by pid and namespace below.
            }
        }

        Leftovers.TearDown(Id, Directory);
    }

    private T Own<T>(T resource)
        where T : IAsyncDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    private void BuildNetwork()
    {
        RigCommand.Must("ip", "netns", "add", FabricNamespace);
        RigCommand.Must("ip", "netns", "add", VmNamespace);
        RigCommand.Must("ip", "-n", FabricNamespace, "link", "set", "lo", "up");
        RigCommand.Must("ip", "-n", VmNamespace, "link", "set", "lo", "up");
        RigCommand.Must("ip", "-n", FabricNamespace, "link", "add", "vm0", "type", "veth", "peer", "name", "eth0", "netns", VmNamespace);
        RigCommand.Must("ip", "-n", FabricNamespace, "addr", "add", FabricAddress + "/24", "dev", "vm0");
        RigCommand.Must("ip", "-n", FabricNamespace, "addr", "add", MetadataAddress + "/32", "dev", "lo");
        RigCommand.Must("ip", "-n", FabricNamespace, "link", "set", "vm0", "up");
        RigCommand.Must("ip", "-n", VmNamespace, "addr", "add", VmAddress + "/24", "dev", "eth0");
        RigCommand.Must("ip", "-n", VmNamespace, "link", "set", "eth0", "up");
        RigCommand.Must("ip", "-n", VmNamespace, "route", "add", MetadataAddress + "/32", "via", FabricAddress, "dev", "eth0");

        // Off, as on a fresh VM: dockerd turns forwarding on itself and then sets the FORWARD policy to DROP.
        var forwarding = InVm("sysctl", "-qw", "net.ipv4.ip_forward=0");
        if (!forwarding.Succeeded)
        {
            throw new InvalidOperationException("could not turn forwarding off in the VM namespace: " + forwarding.Describe());
        }
    }

    private async Task<ChildProcess> StartEmulatorAsync()
    {
        var emulator = Own(ChildProcess.Start("dotnet",
        [
            Path.Combine(AppContext.BaseDirectory, "MsiProxy.ImdsEmulator.dll"),
            "--urls", $"http://{MetadataAddress}:80;http://{MetadataAddress}:{OtherImdsPort}",
            $"--Emulator:Control:Urls=http://127.0.0.1:{ControlPort}",
            "--Emulator:UserAssigned:0:ClientId=" + ClientId,
            "--Emulator:UserAssigned:0:ObjectId=0d9e8f7a-6b5c-4d3e-8f21-a0b1c2d3e4aa",
            "--Emulator:UserAssigned:0:ResourceId=/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/rig",
            "--Emulator:SystemAssigned=false", // its one identity is the VM's: a request without a selector gets it
            "--Emulator:Limits:Enabled=false",
        ], ChildProcess.InNamespace("/run/netns/" + FabricNamespace)));
        await emulator.WaitForLineAsync(EmulatorListening(), TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        return emulator;
    }

    private static string Tail(string? text) => text is null ? "(not started)" : text.Length <= 6000 ? text : "…" + text[^6000..];

    [GeneratedRegex("IMDS emulator listening on ")]
    private static partial Regex EmulatorListening();
}
