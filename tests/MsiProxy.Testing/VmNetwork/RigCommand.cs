using MsiProxy.Interception;

namespace MsiProxy.Testing.VmNetwork;

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
