using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.VmNetwork;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// The demo (src/MsiProxy.Demo) end to end: the real program in a network namespace with only loopback (so it cannot
/// reach 169.254.169.254 whatever happens), and the curl commands it prints, run verbatim next to it. The product
/// itself has no demo: the emulator is not part of it.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class DemoTests
{
    [Fact]
    public async Task The_printed_curl_commands_get_a_token_and_show_the_refusals()
    {
        await using var demo = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.Demo.dll")], ChildProcess.IsolatedWrapper);
        await demo.WaitForLineAsync(new Regex("curl .*--interface 127\\.0\\.0\\.2"), TimeSpan.FromSeconds(60));

        var curls = demo.StandardOutput.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("curl ", StringComparison.Ordinal)).ToList();
        var token = curls.Single(c => c.Contains("oauth2/token", StringComparison.Ordinal) && !c.Contains("client_id", StringComparison.Ordinal)
            && !c.Contains("--interface", StringComparison.Ordinal));
        var userAssigned = curls.Single(c => c.Contains("client_id=8b4d6c3a", StringComparison.Ordinal));
        var wrongIdentity = curls.Single(c => c.Contains("client_id=00000000", StringComparison.Ordinal));
        var stranger = curls.Single(c => c.Contains("--interface 127.0.0.2", StringComparison.Ordinal));

        var (status, body) = Curl(demo, token);
        Assert.True(status == 200, $"{token} → {status} {body}");
        using (var json = JsonDocument.Parse(body))
        {
            Assert.Equal(3, json.RootElement.GetProperty("access_token").GetString()!.Split('.').Length);
            Assert.Equal("https://management.azure.com/", json.RootElement.GetProperty("resource").GetString());
        }

        (status, body) = Curl(demo, userAssigned);
        Assert.True(status == 200, $"{userAssigned} → {status} {body}");

        (status, body) = Curl(demo, wrongIdentity);
        Assert.True(status == 400, $"{wrongIdentity} → {status} {body}");
        Assert.Equal(MsiProxy.Tests.Requests.CoreAssert.IdentityNotFoundBody, body);

        (status, body) = Curl(demo, stranger);
        Assert.True(status == 403, $"{stranger} → {status} {body}");
        Assert.Contains("127.0.0.2", body);
    }

    [Fact]
    public async Task The_product_refuses_demo_and_names_the_demo_program()
    {
        // Refused before any host is built. Isolated, and with a loopback upstream, should it start after all.
        await using var program = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"), "--demo", "--MsiProxy:Upstreams:0=http://127.0.0.1:9"],
            ChildProcess.IsolatedWrapper);
        var exit = await program.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 2, $"exit {exit?.ToString(CultureInfo.InvariantCulture) ?? "(still running)"}\n{program.Output}");
        Assert.Contains("dotnet run --project src/MsiProxy.Demo", program.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening", program.StandardOutput, StringComparison.Ordinal);
    }

    /// <summary>Runs the printed command in the demo's own network namespace (the only place it listens).</summary>
    private static (int Status, string Body) Curl(ChildProcess demo, string curl)
    {
        var result = RigCommand.Run("nsenter", ["-t", demo.Id.ToString(CultureInfo.InvariantCulture), "-n", "sh", "-c", curl + " --max-time 20 -w '\\n%{http_code}'"],
            TimeSpan.FromSeconds(30));
        Assert.True(result.Succeeded, $"{curl}: {result.Describe()}");
        var output = result.Output;
        var split = output.TrimEnd().LastIndexOf('\n');
        return (int.Parse(output[(split + 1)..].Trim(), CultureInfo.InvariantCulture), output[..split]);
    }
}
