using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// The end-to-end tests' use of the <see cref="VmNetwork"/> rig: busybox containers on the VM's dockerd that call
/// 169.254.169.254 unchanged, MsiProxy started inside the VM (host networking, as on a real VM) with that daemon's
/// socket, and the fabric's IMDS as upstream. On dispose the rig goes, and the test's output gets its diagnostics
/// when the test failed.
/// </summary>
public sealed class VmLab : IAsyncDisposable
{
    public const string ApiKey = "e2e-admin-key-0123456789";
    public const string ProxyPort = "80";
    /// <summary>The bound for what the rig does "soon" (docker, iptables and the monitor on a loaded machine).</summary>
    public static readonly TimeSpan Soon = TimeSpan.FromSeconds(20);
    private readonly ITestOutputHelper _output;
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private ChildProcess? _proxy;
    private bool _passed;

    private VmLab(VmNetwork rig, ITestOutputHelper output)
    {
        Rig = rig;
        _output = output;
    }

    public VmNetwork Rig { get; }

    public ChildProcess Proxy => _proxy ?? throw new InvalidOperationException("the proxy was not started");

    public static async Task<VmLab> StartAsync(ITestOutputHelper output)
    {
        var watch = Stopwatch.StartNew();
        var lab = new VmLab(await VmNetwork.StartAsync(), output);
        output.WriteLine($"rig {lab.Rig.Id} up in {watch.Elapsed.TotalSeconds:F1} s");
        return lab;
    }

    /// <summary>A sleeping busybox container; returns its id.</summary>
    public string Run(string name, string network, params string[] labels) => RunAt(name, network, null, labels);

    /// <summary>A sleeping busybox container at a fixed address (the network needs a --subnet); returns its id.</summary>
    public string RunAt(string name, string network, string? address, params string[] labels)
    {
        var result = Rig.Docker(["run", "-d", "--name", name, "--network", network, .. address is null ? [] : (string[])["--ip", address],
            .. labels.SelectMany(l => new[] { "--label", l }), VmNetwork.Image, "sleep", "3600"]);
        Assert.True(result.Succeeded, $"docker run {name}: {result.Describe()}");
        return result.Output.Trim();
    }

    /// <summary>A container whose one command is the token request, started and calling at once; returns what it printed.</summary>
    public RigResult RunCalling(string name, string network, string marker, params string[] labels) =>
        Rig.Docker(["run", "--rm", "--name", name, "--network", network, .. labels.SelectMany(l => new[] { "--label", l }), VmNetwork.Image,
            .. Wget(80, marker)]);

    /// <summary>From inside <paramref name="container"/>: a token request to 169.254.169.254:<paramref name="port"/> whose resource carries the marker.</summary>
    public RigResult Call(string container, string marker, int port = 80) => Rig.Docker(["exec", container, .. Wget(port, marker)]);

    public void Remove(string container) => Rig.Docker("rm", "-f", container);

    public void CreateNetwork(string name, params string[] options)
    {
        var created = Rig.Docker(["network", "create", .. options, name]);
        Assert.True(created.Succeeded, $"docker network create {name}: {created.Describe()}");
    }

    /// <summary>
    /// MsiProxy with its in-process monitor, in the VM's network namespace: client listener on the VM's address (where
    /// the host rules send containers), management on the VM's loopback. Waits until /readyz answers 200.
    /// </summary>
    public async Task<ChildProcess> StartProxyAsync(IReadOnlyList<string>? upstreams = null, IEnumerable<IPAddress>? testNetworkAddresses = null,
        params string[] extra)
    {
        var proxy = Rig.StartMsiProxy(upstreams ?? [$"http://{VmNetwork.MetadataAddress}"], testNetworkAddresses ?? [],
        [
            "--urls", $"http://{VmNetwork.VmAddress}:{ProxyPort}",
            "--MsiProxy:Management:Urls=http://127.0.0.1:8081",
            "--MsiProxy:Management:ApiKey=" + ApiKey,
            "--MsiProxy:Health:Interval=00:00:01",
            "--MsiProxy:Docker:Endpoint=" + Rig.Dockerd.Endpoint,
            "--MsiProxy:Docker:Wiring=Linux",
            "--MsiProxy:Docker:ProxyAddress=" + VmNetwork.VmAddress,
            "--MsiProxy:Docker:ProxyPort=" + ProxyPort,
            "--MsiProxy:Docker:ReconcileInterval=00:00:05",
            "--MsiProxy:Docker:RetryBaseDelay=00:00:00.5",
            .. extra,
        ]);
        _proxy = proxy;
        var started = Stopwatch.StartNew();
        await Eventually(() => ReadyAsync(), TimeSpan.FromSeconds(45), "the proxy is ready", () => proxy.Output);
        _output.WriteLine($"proxy ready in {started.Elapsed.TotalSeconds:F1} s");
        return proxy;
    }

    /// <summary>GET on the proxy's management listener (admin key sent); null when it does not answer 200.</summary>
    public async Task<JsonElement?> AdminAsync(string path)
    {
        using var management = Rig.VmClient(new Uri("http://127.0.0.1:8081"));
        management.DefaultRequestHeaders.Authorization = new("Bearer", ApiKey);
        try
        {
            using var response = await management.GetAsync(path);
            return response.IsSuccessStatusCode ? await response.Content.ReadFromJsonAsync<JsonElement>() : null;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    public async Task<bool> ReadyAsync()
    {
        using var management = Rig.VmClient(new Uri("http://127.0.0.1:8081"));
        try
        {
            using var response = await management.GetAsync("/readyz");
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>The proxy's log (compact JSON, one event a line), in the order written.</summary>
    public List<JsonElement> ProxyLog()
    {
        var events = new List<JsonElement>();
        foreach (var line in Proxy.Output.Split('\n').Where(l => l.StartsWith('{')))
        {
            using var json = JsonDocument.Parse(line);
            events.Add(json.RootElement.Clone());
        }

        return events;
    }

    /// <summary>The proxy's log events named <paramref name="eventName"/> (e.g. Decision, LogRegistered), in the order written.</summary>
    public List<JsonElement> ProxyEvents(string eventName) => [.. ProxyLog().Where(e => EventName(e) == eventName)];

    public static string? EventName(JsonElement logEvent) =>
        logEvent.TryGetProperty("EventId", out var id) && id.TryGetProperty("Name", out var name) ? name.GetString() : null;

    /// <summary>
    /// The audit events of <paramref name="caller"/>'s requests, once there are at least <paramref name="expected"/>
    /// (or after 5 s): the console is written in batches, so a request's audit line follows its answer by a few ms.
    /// </summary>
    public async Task<List<JsonElement>> DecisionsForAsync(string caller, int expected)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (true)
        {
            List<JsonElement> decisions = [.. ProxyEvents("Decision").Where(e => e.GetProperty("Caller").GetString() == caller)];
            if (decisions.Count >= expected || DateTime.UtcNow > deadline)
            {
                return decisions;
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Requests the fabric's IMDS received whose query carries <paramref name="marker"/>.</summary>
    public async Task<List<JsonElement>> ImdsRequestsWithAsync(string marker) =>
        [.. (await Rig.ImdsRequestsAsync()).Where(r => r.GetProperty("query").GetString()!.Contains(marker, StringComparison.Ordinal))];

    /// <summary>The MsiProxy rules in the VM, in iptables-save form: the jumps and both chains.</summary>
    public List<string> HostRules() =>
        [.. Rig.IptablesSave().Split('\n').Where(l => l.Contains("MSIPROXY", StringComparison.Ordinal)).Select(l => l.Trim())];

    /// <summary><c>MsiProxy uninstall-host-rules</c> (or another subcommand) run in the VM, as an operator would.</summary>
    public RigResult Subcommand(params string[] arguments) =>
        Rig.InVm(["dotnet", Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll"), .. arguments]);

    /// <summary>Waits until the monitor reports <paramref name="name"/> as container <paramref name="containerId"/>, status wired.</summary>
    public Task WaitWiredAsync(string name, string containerId) =>
        Eventually(async () => await AdminAsync("/admin/wiring") is { } wiring
                && wiring.GetProperty("clients").EnumerateArray().Any(c => c.GetProperty("name").GetString() == name
                    && c.GetProperty("containerId").GetString() == containerId && c.GetProperty("status").GetString() == "wired"),
            Soon, $"{name} is wired");

    /// <summary>Packets the drop rule has counted (iptables -S -v prints "-A MSIPROXY-IMDS-DROP -c PACKETS BYTES -j DROP").</summary>
    public long DroppedPackets()
    {
        var line = Rig.InVm("iptables", "-w", "-t", "filter", "-S", "MSIPROXY-IMDS-DROP", "-v").Output.Split('\n')
            .Single(l => l.EndsWith("-j DROP", StringComparison.Ordinal)).Split(' ');
        return long.Parse(line[Array.IndexOf(line, "-c") + 1], System.Globalization.CultureInfo.InvariantCulture);
    }

    public static string Marker(string what) => $"{what}-{Guid.NewGuid():N}"[..(what.Length + 9)];

    /// <summary>A token for the VM's identity, as IMDS answers it.</summary>
    public static void AssertToken(RigResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        Assert.True(result.Succeeded, "no token: " + result.Describe());
        using var json = JsonDocument.Parse(result.Output);
        Assert.False(string.IsNullOrEmpty(json.RootElement.GetProperty("access_token").GetString()));
        Assert.Equal(VmNetwork.ClientId, json.RootElement.GetProperty("client_id").GetString());
    }

    /// <summary>The proxy's 403 (busybox wget prints the status line).</summary>
    public static void AssertForbidden(RigResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        Assert.False(result.Succeeded, "expected 403, got: " + result.Output);
        Assert.Contains("403 Forbidden", result.Error, StringComparison.Ordinal);
    }

    /// <summary>Call at the end of a test that passed; otherwise dispose prints the diagnostics.</summary>
    public void Passed() => _passed = true;

    public async ValueTask DisposeAsync()
    {
        if (!_passed)
        {
            _output.WriteLine("proxy output:\n" + (_proxy?.Output ?? "(not started)"));
            _output.WriteLine(Rig.Diagnostics());
        }

        var teardown = Stopwatch.StartNew();
        await Rig.DisposeAsync();
        _output.WriteLine($"test took {_watch.Elapsed.TotalSeconds:F1} s (tear-down {teardown.Elapsed.TotalSeconds:F1} s)");
    }

    /// <summary>busybox wget (its -T segfaults in Debian's 1.35: bounded by timeout instead).</summary>
    private static string[] Wget(int port, string marker) =>
        ["timeout", "5", "wget", "-q", "-O", "-", "--header", "Metadata: true",
            $"http://{VmNetwork.MetadataAddress}:{port}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2F{marker}.example%2F"];
}
