using System.Diagnostics;

namespace MsiProxy.Interception;

/// <summary>
/// Runs a program on the host (iptables, iptables-restore) and returns its exit code and output. The one way any
/// interception code starts a process, so tests can see the exact commands or run them inside a network namespace.
/// </summary>
public interface ICommandRunner
{
    /// <param name="standardInput">Written to the program's stdin, then closed; null leaves stdin empty.</param>
    Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput, CancellationToken cancellationToken);
}

public sealed record CommandResult(int ExitCode, string Output, string Error)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>"exit 4: iptables: …" — what a failure is reported as.</summary>
    public string Describe() => $"exit {ExitCode}: {(Error.Trim().Length > 0 ? Error.Trim() : Output.Trim())}".TrimEnd(' ', ':');
}

internal static class CommandRunnerExtensions
{
    public static Task<CommandResult> RunAsync(this ICommandRunner runner, string command, IReadOnlyList<string> arguments,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(runner);
        return runner.RunAsync(command, arguments, null, cancellationToken);
    }
}

/// <summary>Starts the program as a child process; a cancelled call kills it (and its children) instead of leaving it behind.</summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    /// <summary>The exit code a shell gives a command it cannot find.</summary>
    public const int NotFound = 127;

    public async Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput,
        CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(command)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {command}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new CommandResult(NotFound, "", $"could not start {command}: {ex.Message}"); // as a shell reports it
        }

        using var owned = process;
        var output = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var error = process.StandardError.ReadToEndAsync(CancellationToken.None);
        try
        {
            await WriteInputAsync(process, standardInput, cancellationToken).ConfigureAwait(false);
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process); // never leave a cancelled command running
            throw;
        }

        return new CommandResult(process.ExitCode, await output.ConfigureAwait(false), await error.ConfigureAwait(false));
    }

    private static async Task WriteInputAsync(Process process, string? input, CancellationToken cancellationToken)
    {
        try
        {
            if (input is not null)
            {
                await process.StandardInput.WriteAsync(input.AsMemory(), cancellationToken).ConfigureAwait(false);
            }

            process.StandardInput.Close();
        }
        catch (IOException)
        {
            // The program exited (or closed stdin) without reading it all: its exit code says what happened.
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // already exited
        }
    }
}
