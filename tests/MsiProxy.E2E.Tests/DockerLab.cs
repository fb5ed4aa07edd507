using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// A throw-away lab on the local Docker engine: one --internal network with its own /24, busybox containers (image
/// imported from the host's busybox-static, no registry) and .NET processes (proxy, emulator) started with nsenter
/// inside a container's network namespace. Nothing is reachable from outside the network, and nothing here sends a
/// packet from the host's namespace. Everything it created is removed on dispose, also after a failure.
/// </summary>
public sealed class DockerLab : IAsyncDisposable
{
    public const string Image = "msiproxy-e2e/busybox:1";
    public const string ApiKey = "e2e-admin-key-0123456789";

    private readonly List<string> _containers = [];
    private readonly List<(Process Process, StringBuilder Output)> _processes = [];

    private DockerLab(string prefix, string subnetBase)
    {
        Prefix = prefix;
        SubnetBase = subnetBase;
    }

    public string Prefix { get; }
    public string Network => Prefix;

    /// <summary>"10.251.N." — append a host number for a fixed address.</summary>
    public string SubnetBase { get; }

    public static string OutputFolder => AppContext.BaseDirectory;

    /// <summary>Why these tests cannot run here, or null.</summary>
    public static string? WhyUnavailable()
    {
        if (!OperatingSystem.IsLinux())
        {
            return "the end-to-end tests need Linux (nsenter, iptables)";
        }

        if (Environment.UserName != "root")
        {
            return $"the end-to-end tests need root (nsenter + iptables in container namespaces); running as {Environment.UserName}";
        }

        var info = Sh("docker info --format '{{.ServerVersion}}'");
        if (info.Exit != 0)
        {
            return "no Docker engine is reachable (docker info: " + info.Err.Trim() + ")";
        }

        foreach (var tool in new[] { "nsenter", "iptables" })
        {
            if (Sh("command -v " + tool).Exit != 0)
            {
                return tool + " is not installed";
            }
        }

        return File.Exists("/bin/busybox") || Sh("docker image inspect " + Image).Exit == 0 ? null : "/bin/busybox (Debian busybox-static) is missing";
    }

    public static DockerLab Create()
    {
        EnsureImage();
        var random = Random.Shared;
        for (var attempt = 0; attempt < 10; attempt++)
        {
            var lab = new DockerLab($"msiproxy-e2e-{random.Next(0x100000):x5}", $"10.251.{random.Next(1, 254)}.");
            var created = Sh($"docker network create --internal --subnet {lab.SubnetBase}0/24 --label msiproxy-e2e=1 {lab.Network}");
            if (created.Exit == 0)
            {
                return lab;
            }
        }

        throw new InvalidOperationException("could not create an internal test network");
    }

    /// <summary>Starts a sleeping busybox container at <c>SubnetBase + host</c> with the given labels; returns its id.</summary>
    public string Run(string name, int host, params string[] labels)
    {
        var labelArgs = string.Concat(labels.Select(l => $" --label '{l}'"));
        var result = Sh($"docker run -d --name {Prefix}-{name} --network {Network} --ip {SubnetBase}{host}{labelArgs} --label msiproxy-e2e=1 {Image} sleep 3600");
        Assert.True(result.Exit == 0, "docker run failed: " + result.Err);
        _containers.Add(Prefix + "-" + name);
        return result.Out.Trim();
    }

    public void Remove(string name) => Sh($"docker rm -f {Prefix}-{name}");

    public int Pid(string name) => int.Parse(Sh($"docker inspect -f '{{{{.State.Pid}}}}' {Prefix}-{name}").Out.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    public (int Exit, string Out, string Err) Exec(string name, string command) =>
        Sh($"docker exec {Prefix}-{name} sh -c {Quote(command)}");

    /// <summary>Runs a .NET program from the test output folder inside <paramref name="container"/>'s network namespace.</summary>
    public Process StartInNamespace(string container, string dll, params string[] arguments)
    {
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in (string[])[$"--net=/proc/{Pid(container)}/ns/net", "dotnet", Path.Combine(OutputFolder, dll), .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing may lean on the host's proxy settings or managed-identity variables.
        foreach (var variable in new[] { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT" })
        {
            start.Environment.Remove(variable);
        }

        start.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = "";
        var process = Process.Start(start)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _processes.Add((process, output));
        return process;
    }

    public string OutputOf(Process process)
    {
        var output = _processes.First(p => p.Process == process).Output;
        lock (output)
        {
            return output.ToString();
        }
    }

    public static void Stop(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
    }

    /// <summary>An IMDS emulator listening on :80 in <paramref name="container"/>, with one user-assigned identity.</summary>
    public Process StartEmulator(string container, string clientId) => StartInNamespace(container, "MsiProxy.ImdsEmulator.dll",
        "--urls", "http://0.0.0.0:80",
        "--Emulator:UserAssigned:0:ClientId=" + clientId,
        "--Emulator:UserAssigned:0:ObjectId=0d9e8f7a-6b5c-4d3e-8f21-a0b1c2d3e4aa",
        "--Emulator:UserAssigned:0:ResourceId=/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/e2e");

    /// <summary>MsiProxy on :80 (management on the namespace's own 127.0.0.1:8081) in <paramref name="container"/>.</summary>
    public Process StartProxy(string container, string upstream, bool monitor, params string[] extra) => StartInNamespace(container, "MsiProxy.dll",
        [
            "--urls", "http://0.0.0.0:80",
            "--MsiProxy:Management:Urls=http://127.0.0.1:8081",
            "--MsiProxy:Management:ApiKey=" + ApiKey,
            "--MsiProxy:Upstreams:0=" + upstream,
            "--MsiProxy:Health:Interval=00:00:01",
            .. monitor
                ? (string[])["--MsiProxy:Docker:Endpoint=unix:///var/run/docker.sock", "--MsiProxy:Docker:Network=" + Network,
                    "--MsiProxy:Docker:Wiring=Linux", "--MsiProxy:Docker:ReconcileInterval=00:00:05", "--MsiProxy:Docker:RetryBaseDelay=00:00:00.5"]
                : [],
            .. extra,
        ]);

    /// <summary>GET on the management listener of the proxy in <paramref name="container"/> (from inside its namespace).</summary>
    public JsonElement? Admin(string container, string path)
    {
        var result = Exec(container, $"wget -q -O - --header 'Authorization: Bearer {ApiKey}' http://127.0.0.1:8081{path}");
        return result.Exit == 0 ? JsonDocument.Parse(result.Out).RootElement.Clone() : null;
    }

    public static async Task Eventually(Func<bool> condition, TimeSpan timeout, Func<string> describe)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < timeout, $"not within {timeout.TotalSeconds} s: {describe()}");
            await Task.Delay(250);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (process, _) in _processes)
        {
            try
            {
                Stop(process);
            }
            catch (InvalidOperationException)
            {
                // already gone
            }

            process.Dispose();
        }

        // The DNAT rules live in the containers' namespaces and go with them.
        foreach (var container in _containers)
        {
            Sh("docker rm -f " + container);
        }

        Sh("docker network rm " + Network);
        await Task.CompletedTask;
    }

    public static (int Exit, string Out, string Err) Sh(string command)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Quote(string text) => "'" + text.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static void EnsureImage()
    {
        if (Sh("docker image inspect " + Image).Exit == 0)
        {
            return;
        }

        var root = Directory.CreateTempSubdirectory("msiproxy-e2e-rootfs").FullName;
        try
        {
            var built = Sh($"mkdir -p {root}/bin {root}/tmp {root}/etc {root}/proc {root}/sys {root}/dev && cp /bin/busybox {root}/bin/ && "
                + $"for a in sh sleep wget cat; do ln -s busybox {root}/bin/$a; done && "
                + $"tar -C {root} -c . | docker import -c 'ENV PATH=/bin' - {Image}");
            Assert.True(built.Exit == 0, "could not build the busybox image: " + built.Err);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
