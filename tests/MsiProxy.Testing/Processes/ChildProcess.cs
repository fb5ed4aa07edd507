using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace MsiProxy.Testing.Processes;

/// <summary>
/// The one wrapper for a process a test starts and watches — the proxy, the emulator, the demo, an SDK client, a
/// dockerd: its output kept (stdout and stderr, line by line), lines awaited as events, exit awaited with a bound, and
/// the process killed with its children on dispose. Nothing from the test runner's environment can point it at a real
/// endpoint (proxy, managed-identity and OTLP variables are removed). One-shot rig commands (ip, iptables, docker) go
/// through <see cref="VmNetwork.RigCommand"/> instead.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    /// <summary>
    /// Removed from every child's environment: proxies, managed-identity endpoints, an OTLP collector, and listener
    /// settings that would move a program's ports. A test that wants one sets it explicitly.
    /// </summary>
    public static readonly IReadOnlyList<string> ScrubbedVariables =
    [
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
        "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        "OTEL_EXPORTER_OTLP_ENDPOINT", "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS",
        "ASPNETCORE_ENVIRONMENT", "DOTNET_ENVIRONMENT",
    ];

    /// <summary>
    /// A prefix that runs the program in a fresh network namespace holding only <c>lo</c>: whatever its configuration,
    /// it can reach nothing but loopback (needs root). unshare and sh exec in place, so the pid is the program's.
    /// </summary>
    public static readonly IReadOnlyList<string> IsolatedWrapper = ["unshare", "-n", "sh", "-c", "ip link set lo up && exec \"$@\"", "isolated"];

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly List<string> _stdoutLines = [];
    private readonly List<(Regex Pattern, TaskCompletionSource<Match> Seen)> _watches = [];
    private readonly TaskCompletionSource _streamsClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _streamsOpen = 2;
    private bool _finished; // under the lock: exited and read; no line will come

    private ChildProcess(Process process, string description)
    {
        _process = process;
        Description = description;
    }

    /// <summary>The command line, for failure messages.</summary>
    public string Description { get; }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Everything it printed so far (stdout and stderr, interleaved).</summary>
    public string Output => Read(_output);

    public string StandardOutput => Read(_stdout);

    public string StandardError => Read(_stderr);

    /// <summary>The lines of stdout so far (e.g. one compact-JSON log event each).</summary>
    public IReadOnlyList<string> StandardOutputLines
    {
        get
        {
            lock (_output)
            {
                return [.. _stdoutLines];
            }
        }
    }

    /// <summary>An assembly of this repository in the test's output folder (MsiProxy.dll, MsiProxy.Demo.dll, MsiProxy.ImdsEmulator.dll).</summary>
    public static string TestOutput(string fileName) => Path.Combine(AppContext.BaseDirectory, fileName);

    /// <summary>A prefix that runs the program in an existing network namespace (<c>/run/netns/NAME</c> or <c>/proc/PID/ns/net</c>).</summary>
    public static IReadOnlyList<string> InNamespace(string netnsPath) => ["nsenter", "--net=" + netnsPath, "--"];

    /// <param name="program">The program, e.g. "dotnet" (with the assembly as first argument) or "node".</param>
    /// <param name="wrapper">A command prefix the program runs under: <see cref="IsolatedWrapper"/>, <see cref="InNamespace"/>…</param>
    /// <param name="environment">Set (a null value removes it) after <see cref="ScrubbedVariables"/> are removed.</param>
    /// <param name="workingDirectory">The test's output folder unless given.</param>
    /// <param name="keepInputOpen">Leave stdin open, for a wrapper that stops its program when stdin closes (<see cref="CloseInput"/>).</param>
    public static ChildProcess Start(string program, IEnumerable<string> arguments, IReadOnlyList<string>? wrapper = null,
        IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null, bool keepInputOpen = false)
    {
        ArgumentNullException.ThrowIfNull(program);
        ArgumentNullException.ThrowIfNull(arguments);
        List<string> command = [.. wrapper ?? [], program, .. arguments];
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? AppContext.BaseDirectory,
        };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var variable in ScrubbedVariables)
        {
            start.Environment.Remove(variable);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var child = new ChildProcess(process, string.Join(' ', command));
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data, stdout: false);
        process.Exited += (_, _) => child.OnExit();
        process.Start();
        if (!keepInputOpen)
        {
            process.StandardInput.Close();
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
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

            if (_finished)
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

    /// <summary>The exit code once it has exited and its output is read to the end; null when it still runs after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        try
        {
            await _exited.Task.WaitAsync(timeout, ct).ConfigureAwait(false);
            return _process.ExitCode;
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    /// <summary>
    /// Sends until the program answers at all (its listener is open) and returns that first answer; a refused connection
    /// means not listening yet. Fails with the program's output when it exits or <paramref name="within"/> passes first.
    /// </summary>
    public async Task<T> FirstAnswerAsync<T>(Func<Task<T>> send, TimeSpan within)
    {
        ArgumentNullException.ThrowIfNull(send);
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline && !_process.HasExited)
        {
            try
            {
                return await send().ConfigureAwait(false);
            }
            catch (HttpRequestException ex) when (ex.InnerException is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused })
            {
                await Task.Delay(50).ConfigureAwait(false); // not listening yet
            }
        }

        throw new TimeoutException($"{Description} never answered:\n{Output}");
    }

    /// <summary>Fails (with its output) if it has exited: a wait on something it should do ends at once.</summary>
    public void ThrowIfExited()
    {
        if (_process.HasExited)
        {
            throw new InvalidOperationException($"{Description} exited ({_process.ExitCode}):\n{Output}");
        }
    }

    /// <summary>Closes its stdin (started with keepInputOpen): the way to ask a supervising wrapper for a graceful stop.</summary>
    public void CloseInput() => _process.StandardInput.Close();

    /// <summary>
    /// SIGTERM, as <c>docker stop</c> and the kubelet send it: the program's orderly stop, not a kill. Without a wrapper
    /// the process id is the program's own, so the signal reaches the program itself.
    /// </summary>
    public void Terminate()
    {
        if (Kill(Id, 15 /* SIGTERM */) != 0)
        {
            throw new InvalidOperationException($"kill({Id}, SIGTERM) failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }

#pragma warning disable CA5392, SYSLIB1054 // libc by name; a plain DllImport needs no unsafe code
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
#pragma warning restore CA5392, SYSLIB1054

    /// <summary>SIGKILL to it and its children, as when a process dies: no shutdown code of its own runs.</summary>
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

        if (await WaitForExitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false) is null)
        {
            throw new TimeoutException($"{Description} (pid {Id}) still runs 15 s after SIGKILL");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    private string Read(StringBuilder text)
    {
        lock (_output)
        {
            return text.ToString();
        }
    }

    private void OnLine(string? line, bool stdout)
    {
        if (line is null)
        {
            StreamClosed();
            return;
        }

        List<(Match, TaskCompletionSource<Match>)> matched = [];
        lock (_output)
        {
            _output.AppendLine(line);
            (stdout ? _stdout : _stderr).AppendLine(line);
            if (stdout)
            {
                _stdoutLines.Add(line);
            }

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

    private void StreamClosed()
    {
        if (Interlocked.Decrement(ref _streamsOpen) == 0)
        {
            _streamsClosed.TrySetResult();
        }
    }

    // Exited can come before the last lines are read: "exited" (for line waiters and WaitForExitAsync) means the
    // output is complete too — unless a grandchild that outlived it holds the pipes, which is not waited for long.
    private void OnExit() => _ = Task.Run(async () =>
    {
        try
        {
            await _streamsClosed.Task.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // output still held open by a descendant: what was read is what there is
        }

        List<TaskCompletionSource<Match>> waiting;
        lock (_output)
        {
            _finished = true;
            waiting = [.. _watches.Select(w => w.Seen)];
            _watches.Clear();
        }

        foreach (var seen in waiting)
        {
            seen.TrySetException(new InvalidOperationException($"{Description} exited ({_process.ExitCode}) before printing what was awaited:\n{Output}"));
        }

        _exited.TrySetResult();
    });
}
