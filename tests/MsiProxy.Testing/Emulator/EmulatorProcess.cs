using System.Diagnostics;
using System.Text.RegularExpressions;

namespace MsiProxy.Testing.Emulator;

/// <summary>
/// The standalone emulator program (MsiProxy.ImdsEmulator.dll, copied next to any test that references the
/// testing project) as a real child process on ephemeral loopback ports. Disposing kills it.
/// </summary>
public sealed partial class EmulatorProcess : IAsyncDisposable
{
    private readonly Process _process;

    private EmulatorProcess(Process process, Uri imds, Uri? control, Func<string> output)
    {
        _process = process;
        ImdsAddress = imds;
        ControlAddress = control;
        Output = output;
    }

    public Uri ImdsAddress { get; }

    /// <summary>Null when the control listener was not asked for.</summary>
    public Uri? ControlAddress { get; }

    /// <summary>Everything the program printed so far (stdout and stderr).</summary>
    public Func<string> Output { get; }

    /// <param name="arguments">Extra options, e.g. "--Emulator:SystemAssigned=false".</param>
    public static async Task<EmulatorProcess> StartAsync(IEnumerable<string> arguments, bool withControl = true, TimeSpan? startTimeout = null)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "MsiProxy.ImdsEmulator.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        if (withControl)
        {
            start.ArgumentList.Add("--Emulator:Control:Urls=http://127.0.0.1:0");
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment.Remove("ASPNETCORE_URLS");
        start.Environment["Logging__Console__FormatterName"] = "simple";

        var output = new System.Text.StringBuilder();
        var ready = new TaskCompletionSource<Match>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            var match = ListeningLine().Match(e.Data);
            if (match.Success)
            {
                ready.TrySetResult(match);
            }
        }

        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException($"Emulator exited ({process.ExitCode}):\n{output}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        string Output()
        {
            lock (output)
            {
                return output.ToString();
            }
        }

        try
        {
            var match = await ready.Task.WaitAsync(startTimeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            var control = match.Groups["control"].Value;
            return new EmulatorProcess(process, new Uri(match.Groups["imds"].Value), control == "off" ? null : new Uri(control), Output);
        }
        catch
        {
            Kill(process);
            process.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill(_process);
        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    private static void Kill(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }
    }

    [GeneratedRegex(@"IMDS emulator listening on (?<imds>http://[^,;\s]+)[^;]*; control API on (?<control>off|http://[^,\s]+)")]
    private static partial Regex ListeningLine();
}
