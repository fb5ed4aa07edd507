using System.Text.RegularExpressions;
using MsiProxy.Testing.Processes;

namespace MsiProxy.Testing.Emulator;

/// <summary>
/// The standalone emulator program (MsiProxy.ImdsEmulator.dll, copied next to any test that references the
/// testing project) as a real child process on ephemeral loopback ports. Disposing kills it.
/// </summary>
public sealed partial class EmulatorProcess : IAsyncDisposable
{
    private readonly ChildProcess _process;

    private EmulatorProcess(ChildProcess process, Uri imds, Uri? control)
    {
        _process = process;
        ImdsAddress = imds;
        ControlAddress = control;
    }

    public Uri ImdsAddress { get; }

    /// <summary>Null when the control listener was not asked for.</summary>
    public Uri? ControlAddress { get; }

    /// <summary>Everything the program printed so far (stdout and stderr).</summary>
    public string Output => _process.Output;

    /// <param name="arguments">Extra options, e.g. "--Emulator:SystemAssigned=false".</param>
    public static async Task<EmulatorProcess> StartAsync(IEnumerable<string> arguments, bool withControl = true, TimeSpan? startTimeout = null)
    {
        List<string> all = [ChildProcess.TestOutput("MsiProxy.ImdsEmulator.dll"), "--urls", "http://127.0.0.1:0"];
        if (withControl)
        {
            all.Add("--Emulator:Control:Urls=http://127.0.0.1:0");
        }

        all.AddRange(arguments);
        var process = ChildProcess.Start("dotnet", all, environment: new Dictionary<string, string?> { ["Logging__Console__FormatterName"] = "simple" });
        try
        {
            var match = await process.WaitForLineAsync(ListeningLine(), startTimeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            var control = match.Groups["control"].Value;
            return new EmulatorProcess(process, new Uri(match.Groups["imds"].Value), control == "off" ? null : new Uri(control));
        }
        catch
        {
            await process.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    [GeneratedRegex(@"IMDS emulator listening on (?<imds>http://[^,;\s]+)[^;]*; control API on (?<control>off|http://[^,\s]+)")]
    private static partial Regex ListeningLine();
}
