using System.Collections.Concurrent;
using System.Diagnostics;
using MsiProxy.Deploy.Tests.Support;

namespace MsiProxy.Deploy.Tests.Docker;

/// <summary>
/// Runs the `dotnet publish` line of a Dockerfile's build stage on this machine (paths mapped from the image's
/// source folder to the repository), once per distinct command, so tests can compare the Dockerfile with real output.
/// </summary>
public sealed class PublishFixture : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "msiproxy-deploy-publish-" + Environment.ProcessId);
    private readonly ConcurrentDictionary<string, Lazy<string>> _outputs = new(StringComparer.Ordinal);

    /// <summary>Publishes as the Dockerfile's build stage does; returns the local output folder.</summary>
    internal string Publish(DockerStage build)
    {
        var workdir = build.All("WORKDIR").Last().Arguments.Trim();
        var run = Assert.Single(build.All("RUN"), r => r.Arguments.StartsWith("dotnet publish", StringComparison.Ordinal));
        return _outputs.GetOrAdd(run.Arguments, command => new Lazy<string>(() => Run(command, workdir))).Value;
    }

    private string Run(string command, string workdir)
    {
        var output = Path.Combine(_root, _outputs.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8]);
        var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        var args = new List<string>();
        for (var i = 0; i < words.Count; i++)
        {
            var word = words[i];
            if (word == "--no-restore")
            {
                continue; // the image restored in an earlier layer; here restore and publish are one step
            }

            if (word == "-o")
            {
                args.Add("-o");
                args.Add(output);
                i++;
                continue;
            }

            args.Add(MapPath(word, workdir));
        }

        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepositoryPaths.Root };
        args.Add("-nologo");
        // The restore here runs inside the test run's network namespace (loopback only): NuGet's vulnerability audit
        // cannot reach its source there, and its NU1900 warning is an error. The audit is the build's business, not
        // what this fixture checks (the publish output); the packages come from the cache run-all.sh filled.
        args.Add("-p:NuGetAudit=false");
        args.ForEach(start.ArgumentList.Add);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(15)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("dotnet publish took more than 15 minutes: " + string.Join(' ', args));
        }

        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed:\n{stdout.Result}\n{stderr.Result}");
        return output;
    }

    /// <summary>C:\src\docker\publish.props or /src/docker/publish.props → the repository's docker/publish.props.</summary>
    private static string MapPath(string word, string workdir)
    {
        var normalized = word.Replace('\\', '/');
        var source = workdir.Replace('\\', '/').TrimEnd('/');
        var index = normalized.IndexOf(source + "/", StringComparison.OrdinalIgnoreCase);
        return index < 0 ? normalized : normalized[..index] + RepositoryPaths.Root + "/" + normalized[(index + source.Length + 1)..];
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
