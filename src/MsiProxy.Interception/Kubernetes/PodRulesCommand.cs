using MsiProxy.Configuration;

namespace MsiProxy.Interception.Kubernetes;

/// <summary>
/// <c>MsiProxy uninstall-pod-rules</c>: the only way the Kubernetes pod rules go (a stopped or dead proxy leaves them,
/// so pods get refused connections rather than IMDS). Run on the node, in its network namespace, with the same
/// <c>MsiProxy:Kubernetes:Dnat:Command</c> as the proxy (appsettings.json, <c>MsiProxy__…</c> variables or
/// <c>--MsiProxy:…</c> arguments); the chart's <c>kubernetes.dnat.uninstall</c> runs it on every node.
/// Exit codes: 0 done (and what was removed), 1 an iptables command failed, 2 invalid configuration.
/// </summary>
public static class PodRulesCommand
{
    public static Task<int> UninstallAsync(string[] args, TextWriter output) => UninstallAsync(args, output, new ProcessCommandRunner());

    public static async Task<int> UninstallAsync(string[] args, TextWriter output, ICommandRunner runner)
    {
        ArgumentNullException.ThrowIfNull(output);
        DnatOptions options;
        try
        {
            options = Load(args);
        }
        catch (ConfigurationException ex)
        {
            await output.WriteLineAsync("error: the configuration is invalid: " + ex.Message).ConfigureAwait(false);
            return 2;
        }

        try
        {
            var removed = await new PodRules(runner, options).RemoveAsync(CancellationToken.None).ConfigureAwait(false);
            await output.WriteLineAsync(removed.Count == 0 ? "no MsiProxy pod rules were installed" : "removed " + string.Join(", ", removed))
                .ConfigureAwait(false);
            return 0;
        }
        catch (InvalidOperationException ex)
        {
            await output.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
            return 1;
        }
    }

    private static DnatOptions Load(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        var options = new DnatOptions();
        ConfigurationBinding.Checked(() => configuration.GetSection($"{MsiProxyOptions.SectionName}:Kubernetes:Dnat").Bind(options));
        return options;
    }
}
