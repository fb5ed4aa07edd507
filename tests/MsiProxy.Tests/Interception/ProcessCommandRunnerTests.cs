using System.Diagnostics;
using MsiProxy.Interception;

namespace MsiProxy.Tests.Interception;

/// <summary>The one command runner every interception implementation uses, with real child processes.</summary>
public sealed class ProcessCommandRunnerTests
{
    [SkippableFact]
    public async Task Input_reaches_stdin_and_exit_code_stdout_and_stderr_come_back()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "needs /bin/sh");
        var result = await new ProcessCommandRunner().RunAsync("/bin/sh", ["-c", "tr a-z A-Z; echo oops >&2; exit 3"], "*filter\nCOMMIT\n", default);
        Assert.Equal(new CommandResult(3, "*FILTER\nCOMMIT\n", "oops\n"), result);
        Assert.Equal("exit 3: oops", result.Describe());
    }

    [SkippableFact]
    public async Task A_cancelled_command_is_killed_not_left_running()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "needs /bin/sh");
        var pidFile = Path.Combine(Path.GetTempPath(), $"msiproxy-runner-{Guid.NewGuid():N}.pid");
        try
        {
            using var cancel = new CancellationTokenSource();
            var run = new ProcessCommandRunner().RunAsync("/bin/sh", ["-c", $"echo $$ > {pidFile}; exec sleep 60"], null, cancel.Token);
            await Eventually(() => File.Exists(pidFile) && new FileInfo(pidFile).Length > 0, what: "the command writes its pid");

            var pid = int.Parse((await File.ReadAllTextAsync(pidFile)).Trim());
            await cancel.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);

            Process? process = null;
            try
            {
                process = Process.GetProcessById(pid);
            }
            catch (ArgumentException)
            {
                // already gone
            }

            using (process)
            {
                Assert.True(process is null || process.WaitForExit(10_000), $"pid {pid} still runs after the cancelled call");
            }
        }
        finally
        {
            File.Delete(pidFile);
        }
    }

    [Fact]
    public async Task A_program_that_does_not_exist_is_exit_127_with_its_name_not_an_exception()
    {
        var result = await new ProcessCommandRunner().RunAsync("/nonexistent/iptables-restore", ["--noflush"], "x", default);
        Assert.Equal(ProcessCommandRunner.NotFound, result.ExitCode);
        Assert.Contains("/nonexistent/iptables-restore", result.Error, StringComparison.Ordinal);
    }
}
