using System.Net;
using System.Text.RegularExpressions;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// A proxy with neither Docker nor Kubernetes discovery configured does not load their client libraries: the real
/// program (<c>dotnet MsiProxy.dll</c>) serves a token from an emulator on loopback, then its memory map
/// (<c>/proc/PID/maps</c>) is read. A discovery library loaded anyway costs every proxy its mapped code, types and statics.
/// </summary>
[Collection(Serial.Name)]
public sealed partial class ModeFootprintTests
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(90);

    [SkippableFact]
    public async Task Without_discovery_configured_the_Kubernetes_Docker_and_YAML_libraries_are_not_loaded()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "reads /proc/PID/maps");
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var upstream = emulator.BaseAddress.ToString().TrimEnd('/');
        UpstreamGuard.Check([upstream]);
        var client = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var management = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        await using var program = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"),
                "--urls", client.ToString().TrimEnd('/'), $"--MsiProxy:Management:Urls={management.ToString().TrimEnd('/')}",
                $"--MsiProxy:Upstreams:0={upstream}", "--MsiProxy:Health:Timeout=00:00:10",
                "--MsiProxy:Clients:0:Name=app", "--MsiProxy:Clients:0:Address=127.0.0.2"],
            environment: new Dictionary<string, string?> { ["DOTNET_ENVIRONMENT"] = "Production" });

        using var app = LoopbackCaller.Create("127.0.0.2", client);
        var answer = await program.FirstAnswerAsync(() => TokenAsync(app), Generous);
        Assert.True(answer.Status == HttpStatusCode.OK, $"{answer.Status} {answer.Body}\nstdout: {program.StandardOutput}");

        var loaded = LoadedAssemblies(await File.ReadAllTextAsync($"/proc/{program.Id}/maps"));
        // The map is read right: the pipeline that served the token is in it.
        Assert.Contains("MsiProxy.Pipeline.dll", loaded);
        Assert.Contains("Yarp.ReverseProxy.dll", loaded);
        Assert.DoesNotContain(loaded, name => name.StartsWith("KubernetesClient", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(loaded, name => name.StartsWith("Docker.DotNet", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(loaded, name => name.StartsWith("YamlDotNet", StringComparison.OrdinalIgnoreCase));
    }

    private static HashSet<string> LoadedAssemblies(string maps) =>
        [.. DllName().Matches(maps).Select(m => m.Groups[1].Value)];

    [GeneratedRegex(@"/([^/\s]+\.dll)\s*$", RegexOptions.Multiline)]
    private static partial Regex DllName();

}
