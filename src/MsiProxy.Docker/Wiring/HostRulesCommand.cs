using System.Net;
using MsiProxy.Clients;
using MsiProxy.Interception;
using MsiProxy.Interception.Linux;

namespace MsiProxy.Docker.Wiring;

/// <summary>
/// The host rules as explicit steps, configured like the proxy (appsettings.json, <c>MsiProxy__…</c> variables,
/// <c>--MsiProxy:…</c> arguments):
/// <list type="bullet">
/// <item><c>MsiProxy uninstall-host-rules</c> — the only way the rules go: a stopped or dead proxy leaves them, so
/// containers get refused connections rather than IMDS.</item>
/// <item><c>MsiProxy install-host-rules</c> — installs them before the proxy runs (a boot unit ordered before
/// docker.service), so containers that Docker restarts at boot never see IMDS either. Uses the configured interfaces
/// and exemptions only; the proxy adds the engine's networks once it runs.</item>
/// </list>
/// Exit codes: 0 done, 1 an iptables command failed, 2 invalid configuration.
/// </summary>
public static class HostRulesCommand
{
    public static async Task<int> UninstallAsync(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (Load(args, output) is not { } options)
        {
            return 2;
        }

        try
        {
            var removed = await new HostRules(new ProcessCommandRunner(), options.HostRules).RemoveAsync(CancellationToken.None).ConfigureAwait(false);
            await output.WriteLineAsync(removed.Count == 0 ? "no MsiProxy host rules were installed" : "removed " + string.Join(", ", removed))
                .ConfigureAwait(false);
            return 0;
        }
        catch (InvalidOperationException ex)
        {
            await output.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return 1;
        }
    }

    public static async Task<int> InstallAsync(string[] args, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (Load(args, output) is not { } options)
        {
            return 2;
        }

        if (!IPAddress.TryParse(options.ProxyAddress, out var address))
        {
            await output.WriteLineAsync("error: MsiProxy:Docker:ProxyAddress is required: the host address the proxy's client listener will be bound to")
                .ConfigureAwait(false);
            return 2;
        }

        var exempt = options.HostRules.ExemptSources.Select(AddressRange.Parse);
        var chains = HostRules.BuildChains(new ProxyEndpoint(address, options.ProxyPort), options.HostRules.EffectiveInterfaces, exempt);
        var state = await new HostRules(new ProcessCommandRunner(), options.HostRules).ApplyAsync(chains, DateTimeOffset.UtcNow, CancellationToken.None)
            .ConfigureAwait(false);
        await output.WriteLineAsync((state.InPlace ? "installed: " : "not in place: ") + state.Detail).ConfigureAwait(false);
        foreach (var rule in state.Rules)
        {
            await output.WriteLineAsync("  " + rule).ConfigureAwait(false);
        }

        // Before Docker has started, FORWARD does not jump to DOCKER-USER yet: the rules are in, Docker completes them.
        return state.InPlace || state.Detail.StartsWith(HostRules.NoDockerUserJump, StringComparison.Ordinal) ? 0 : 1;
    }

    private static DockerMonitorOptions? Load(string[] args, TextWriter output)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        var options = new DockerMonitorOptions();
        try
        {
            Configuration.ConfigurationBinding.Checked(() => configuration.GetSection(DockerMonitorOptions.SectionName).Bind(options));
        }
        catch (Configuration.ConfigurationException ex)
        {
            output.WriteLine("error: the configuration is invalid:\n  " + ex.Message);
            return null;
        }

        var problems = new DockerMonitorOptionsValidator().Validate(null, options);
        if (problems.Failed)
        {
            output.WriteLine("error: the configuration is invalid:\n  " + string.Join("\n  ", problems.Failures ?? []));
            return null;
        }

        return options;
    }
}
