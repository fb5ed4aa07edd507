using System.Diagnostics;
using System.Text.Json;

namespace MsiProxy.Benchmarks.Load;

/// <summary>
/// Scenario 5: starts a process and asks it for a token every 2 ms until one is served; prints the time from
/// <see cref="Process.Start()"/> to that first 200 as one JSON line, then stops the process.
/// </summary>
internal static class StartupTimer
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = Arguments.Get(args, "url");
        var timeout = TimeSpan.FromSeconds(Arguments.GetInt(args, "timeout", 60)); // scale-config: many clients start slowly
        var separator = Array.IndexOf(args, "--");
        var command = args[(separator + 1)..];
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in command[1..])
        {
            info.ArgumentList.Add(argument);
        }

        var stopwatch = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            while (stopwatch.Elapsed < timeout && !process.HasExited)
            {
                try
                {
                    using var message = new HttpRequestMessage(HttpMethod.Get, url);
                    message.Headers.Add("Metadata", "true");
                    using var response = await http.SendAsync(message);
                    if (response.IsSuccessStatusCode)
                    {
                        var elapsed = stopwatch.Elapsed.TotalMilliseconds;
                        Console.WriteLine(JsonSerializer.Serialize(new { first_token_ms = Math.Round(elapsed, 1) }));
                        return 0;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                await Task.Delay(2);
            }

            await Console.Error.WriteLineAsync($"no token within {timeout.TotalSeconds} s (exited: {process.HasExited})");
            return 1;
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
    }
}
