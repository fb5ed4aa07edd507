using System.Diagnostics;
using System.Text;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// The real MsiProxy program (<c>dotnet MsiProxy.dll …</c>) as a child process. With <c>isolated</c> it runs inside a
/// fresh network namespace that holds only <c>lo</c> (<c>unshare -n</c>), so whatever its configuration, it cannot
/// reach 169.254.169.254 or any other network; <see cref="InNamespaceAsync"/> runs a command next to it.
/// </summary>
internal sealed class ProgramProcess : IAsyncDisposable
{
    private static readonly string[] ScrubbedVariables =
    [
        "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS", "ASPNETCORE_ENVIRONMENT",
        "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "OTEL_EXPORTER_OTLP_ENDPOINT",
    ];

    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly Lock _gate = new();

    private ProgramProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Pid => _process.Id;

    public string StandardOutput
    {
        get
        {
            lock (_gate)
            {
                return _stdout.ToString();
            }
        }
    }

    public string StandardError
    {
        get
        {
            lock (_gate)
            {
                return _stderr.ToString();
            }
        }
    }

    public static string ProgramPath => Path.Combine(AppContext.BaseDirectory, "MsiProxy.dll");

    /// <param name="program">The assembly to run, from this test's output: MsiProxy.dll, or MsiProxy.Demo.dll.</param>
    public static ProgramProcess Start(IEnumerable<string> args, bool isolated, IReadOnlyDictionary<string, string>? environment = null, string? program = null)
    {
        var start = new ProcessStartInfo(isolated ? "unshare" : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        if (isolated)
        {
            // unshare and sh exec in place: the process id is the program's, and so is the namespace.
            foreach (var arg in new[] { "-n", "sh", "-c", "ip link set lo up && exec dotnet \"$@\"", "msiproxy" })
            {
                start.ArgumentList.Add(arg);
            }
        }

        start.ArgumentList.Add(program is null ? ProgramPath : Path.Combine(AppContext.BaseDirectory, program));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var name in ScrubbedVariables)
        {
            start.Environment.Remove(name);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["NO_PROXY"] = "127.0.0.1,localhost";
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the program");
        process.StandardInput.Close();
        return new ProgramProcess(process);
    }

    /// <summary>Waits for the program to exit; null when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            _process.WaitForExit(); // flushes the redirected output
            return _process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Waits until stdout+stderr contain <paramref name="text"/>; false on timeout or exit.</summary>
    public async Task<bool> WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (StandardOutput.Contains(text, StringComparison.Ordinal) || StandardError.Contains(text, StringComparison.Ordinal))
            {
                return true;
            }

            if (_process.HasExited)
            {
                return false;
            }

            await Task.Delay(100);
        }

        return false;
    }

    /// <summary>Runs <c>sh -c command</c> inside this program's network namespace; returns exit code and stdout.</summary>
    public async Task<(int ExitCode, string Output)> InNamespaceAsync(string command, TimeSpan timeout)
    {
        var start = new ProcessStartInfo("nsenter") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { "-t", Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), "-n", "sh", "-c", command })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        await process.WaitForExitAsync(cts.Token);
        return (process.ExitCode, await output + await errors);
    }

    private void Append(StringBuilder target, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            target.AppendLine(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}
