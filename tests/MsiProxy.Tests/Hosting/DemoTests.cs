using System.Text.Json;

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
        await using var demo = ProgramProcess.Start([], isolated: true, program: "MsiProxy.Demo.dll");
        Assert.True(await demo.WaitForOutputAsync("--interface 127.0.0.2", TimeSpan.FromSeconds(60)),
            $"no instructions\nstdout: {demo.StandardOutput}\nstderr: {demo.StandardError}");

        var curls = demo.StandardOutput.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("curl ", StringComparison.Ordinal)).ToList();
        var token = curls.Single(c => c.Contains("oauth2/token", StringComparison.Ordinal) && !c.Contains("client_id", StringComparison.Ordinal)
            && !c.Contains("--interface", StringComparison.Ordinal));
        var userAssigned = curls.Single(c => c.Contains("client_id=8b4d6c3a", StringComparison.Ordinal));
        var wrongIdentity = curls.Single(c => c.Contains("client_id=00000000", StringComparison.Ordinal));
        var stranger = curls.Single(c => c.Contains("--interface 127.0.0.2", StringComparison.Ordinal));

        var (status, body) = await CurlAsync(demo, token);
        Assert.True(status == 200, $"{token} → {status} {body}");
        using (var json = JsonDocument.Parse(body))
        {
            Assert.Equal(3, json.RootElement.GetProperty("access_token").GetString()!.Split('.').Length);
            Assert.Equal("https://management.azure.com/", json.RootElement.GetProperty("resource").GetString());
        }

        (status, body) = await CurlAsync(demo, userAssigned);
        Assert.True(status == 200, $"{userAssigned} → {status} {body}");

        (status, body) = await CurlAsync(demo, wrongIdentity);
        Assert.True(status == 400, $"{wrongIdentity} → {status} {body}");
        Assert.Equal(MsiProxy.Tests.Requests.CoreAssert.IdentityNotFoundBody, body);

        (status, body) = await CurlAsync(demo, stranger);
        Assert.True(status == 403, $"{stranger} → {status} {body}");
        Assert.Contains("127.0.0.2", body);
    }

    [Fact]
    public async Task The_product_refuses_demo_and_names_the_demo_program()
    {
        // Refused before any host is built. Isolated, and with a loopback upstream, should it start after all.
        await using var program = ProgramProcess.Start(["--demo", "--MsiProxy:Upstreams:0=http://127.0.0.1:9"], isolated: true);
        var exit = await program.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.True(exit == 2, $"exit {exit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(still running)"}\nstdout: {program.StandardOutput}\nstderr: {program.StandardError}");
        Assert.Contains("dotnet run --project src/MsiProxy.Demo", program.StandardError, StringComparison.Ordinal);
        Assert.DoesNotContain("Now listening", program.StandardOutput, StringComparison.Ordinal);
    }

    private static async Task<(int Status, string Body)> CurlAsync(ProgramProcess demo, string curl)
    {
        var (exit, output) = await demo.InNamespaceAsync(curl + " --max-time 20 -w '\\n%{http_code}'", TimeSpan.FromSeconds(30));
        Assert.True(exit == 0, $"{curl} exited {exit}: {output}");
        var split = output.TrimEnd().LastIndexOf('\n');
        return (int.Parse(output[(split + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture), output[..split]);
    }
}
