using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using MsiProxy.Interception;

namespace MsiProxy.Docker.Wiring;

/// <summary>
/// Windows containers: copies docker/scripts (as a folder: the scripts share MsiProxyWiring.psm1) into the container and
/// runs Set-MsiProxyWiring.ps1 as ContainerAdministrator, which adds 169.254.169.254 to the interface and a netsh
/// portproxy rule to the proxy. The script prints one JSON line and exits 0 (done), 2 (invalid input), 3 (prerequisite
/// missing) or 4 (a command failed) — see docs/wiring.md.
/// </summary>
internal sealed class WindowsScriptWiring(IContainerEngine engine, IOptions<DockerMonitorOptions> options) : IContainerWiring
{
    public const string User = "ContainerAdministrator";

    public string Mode => "Windows";

    /// <summary>Per container only: a Windows host has no rules that could cover containers that start later.</summary>
    public Task<HostInterceptionState?> ReconcileHostAsync(HostView view, CancellationToken cancellationToken) =>
        Task.FromResult<HostInterceptionState?>(null);

    public Task<WiringOutcome> WireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        RunAsync(container, ["-ProxyAddress", proxy.Address.ToString(), "-ProxyPort", proxy.Port.ToString(CultureInfo.InvariantCulture)],
            cancellationToken);

    public Task<WiringOutcome> UnwireAsync(ContainerInfo container, ProxyEndpoint proxy, CancellationToken cancellationToken) =>
        RunAsync(container, ["-Remove"], cancellationToken);

    private async Task<WiringOutcome> RunAsync(ContainerInfo container, string[] arguments, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!File.Exists(Path.Combine(settings.ScriptsPath, "Set-MsiProxyWiring.ps1")))
        {
            return new(false, $"Set-MsiProxyWiring.ps1 not found in MsiProxy:Docker:ScriptsPath = '{settings.ScriptsPath}'");
        }

        // Copied every time: a restarted container may be a new one, and the folder is small.
        await engine.CopyDirectoryAsync(container.Id, settings.ScriptsPath, settings.ContainerScriptsPath, cancellationToken).ConfigureAwait(false);

        // Server Core has Windows PowerShell; images with PowerShell 7 may have only pwsh.
        var hasPwsh = await engine.ExecAsync(container.Id, null, ["cmd", "/c", "where", "pwsh"], cancellationToken).ConfigureAwait(false);
        var shell = hasPwsh.Succeeded ? "pwsh" : "powershell";
        var script = settings.ContainerScriptsPath.TrimEnd('\\') + @"\Set-MsiProxyWiring.ps1";
        var result = await engine.ExecAsync(container.Id, User, [shell, "-NoProfile", "-NonInteractive", "-File", script, .. arguments],
            cancellationToken).ConfigureAwait(false);
        return Interpret(result);
    }

    /// <summary>Maps the script's exit code and JSON line to an outcome (the JSON error description when there is one).</summary>
    public static WiringOutcome Interpret(ExecResult result)
    {
        var line = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault(l => l.StartsWith('{'));
        string? action = null;
        string? description = null;
        if (line is not null)
        {
            try
            {
                using var json = JsonDocument.Parse(line);
                action = json.RootElement.TryGetProperty("action", out var a) ? a.GetString() : null;
                description = json.RootElement.TryGetProperty("error_description", out var d) ? d.GetString() : null;
            }
            catch (JsonException)
            {
                // Not our JSON: fall back to the exit code and stderr.
            }
        }

        var meaning = result.ExitCode switch
        {
            0 => action ?? "done",
            2 => "invalid input",
            3 => "prerequisite missing",
            4 => "a command failed",
            _ => $"exit code {result.ExitCode}",
        };
        return result.ExitCode == 0
            ? new(true, meaning)
            : new(false, $"{meaning}: {description ?? result.Stderr.Trim()}");
    }
}
