using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using MsiProxy.Interception;

namespace MsiProxy.Testing.VmNetwork;

/// <summary>
/// A child process started inside a network namespace (<c>nsenter --net=…</c>, which execs the program: the pid is the
/// program's), with its output kept for failure messages. Disposing kills it.
/// </summary>
public sealed class NamespacedProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _watches = [];

    private NamespacedProcess(Process process, string description)
    {
        _process = process;
        Description = description;
    }

    public string Description { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything it printed so far (stdout and stderr, interleaved).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <param name="netnsPath">A namespace file: <c>/run/netns/NAME</c> or <c>/proc/PID/ns/net</c>.</param>
    public static NamespacedProcess Start(string netnsPath, string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("nsenter")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        foreach (var argument in (string[])["--net=" + netnsPath, "--", program, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing may lean on the machine's proxy settings, managed-identity variables or an OTLP collector.
        foreach (var variable in new[] { "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy", "IDENTITY_ENDPOINT",
                     "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "ASPNETCORE_URLS", "DOTNET_URLS" })
        {
            start.Environment.Remove(variable);
        }

        start.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = "";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var started = new NamespacedProcess(process, $"{program} {string.Join(' ', arguments)} (in {netnsPath})");
        process.OutputDataReceived += (_, e) => started.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => started.OnLine(e.Data);
        process.Exited += (_, _) => started.OnExit();
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return started;
    }

    /// <summary>Waits for a line matching <paramref name="pattern"/> (also one already printed); fails if the process exits first.</summary>
    public async Task<Match> WaitForLineAsync(Regex pattern, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var seen = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var earlier = pattern.Match(_output.ToString());
            if (earlier.Success)
            {
                return earlier;
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Description} exited ({_process.ExitCode}) before printing /{pattern}/:\n{_output}");
            }

            _watches.Add((pattern, seen));
        }

        try
        {
            return await seen.Task.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{Description} did not print /{pattern}/ within {timeout.TotalSeconds} s:\n{Output}");
        }
    }

    /// <summary>SIGKILL, as when the process dies: no shutdown code of its own runs.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // exited meanwhile
            }
        }

        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await _process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        List<(Match, TaskCompletionSource<Match>)> matched = [];
        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var watch in _watches.ToList())
            {
                if (watch.Pattern.Match(line) is { Success: true } match)
                {
                    matched.Add((match, watch.Seen));
                    _watches.Remove(watch);
                }
            }
        }

        foreach (var (match, seen) in matched)
        {
            seen.TrySetResult(match);
        }
    }

    private void OnExit()
    {
        List<TaskCompletionSource<Match>> waiting;
        lock (_output)
        {
            waiting = [.. _watches.Select(w => w.Seen)];
            _watches.Clear();
        }

        foreach (var seen in waiting)
        {
            seen.TrySetException(new InvalidOperationException($"{Description} exited before printing what was awaited:\n{Output}"));
        }
    }
}

/// <summary>What a rig command did: its exit code and output (the product's own runner result, kept out of this public API).</summary>
public sealed record RigResult(int ExitCode, string Output, string Error)
{
    public bool Succeeded => ExitCode == 0;

    public string Describe() => $"exit {ExitCode}: {(Error.Trim().Length > 0 ? Error.Trim() : Output.Trim())}".TrimEnd(' ', ':');
}

/// <summary>Commands the rig runs (ip, iptables, docker): bounded in time, killed when the bound ends.</summary>
public static class RigCommand
{
    private static readonly ProcessCommandRunner Runner = new();

    public static RigResult Run(string program, IEnumerable<string> arguments, TimeSpan? timeout = null, string? input = null)
    {
        using var bound = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(60));
        try
        {
            var result = Runner.RunAsync(program, [.. arguments], input, bound.Token).GetAwaiter().GetResult();
            return new RigResult(result.ExitCode, result.Output, result.Error);
        }
        catch (OperationCanceledException)
        {
            return new RigResult(124, "", $"{program} {string.Join(' ', arguments)}: killed after {(timeout ?? TimeSpan.FromSeconds(60)).TotalSeconds} s");
        }
    }

    /// <summary>Runs it and fails with its output unless it exits 0.</summary>
    public static RigResult Must(string program, params string[] arguments)
    {
        var result = Run(program, arguments);
        if (!result.Succeeded)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed ({result.Describe()})");
        }

        return result;
    }
}
