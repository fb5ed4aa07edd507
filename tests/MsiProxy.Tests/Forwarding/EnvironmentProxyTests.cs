using System.Net;
using System.Net.Sockets;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Forwarding;

/// <summary>
/// Issue rule 2, "no outbound HTTP proxy": the real program, started with HTTP_PROXY pointing at a trap, must still
/// talk to its upstream directly (an environment proxy between the proxy and IMDS would make IMDS refuse it, or
/// leak tokens). Every address is loopback and the upstream is set explicitly.
/// </summary>
[Collection(MsiProxy.Tests.Hosting.Serial.Name)]
public sealed class EnvironmentProxyTests
{
    [Fact]
    public async Task Http_proxy_in_the_environment_is_never_used_for_upstream_calls()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        using var trap = new TcpListener(IPAddress.Loopback, 0);
        trap.Start();
        var trapped = 0;
        _ = Task.Run(async () =>
        {
            while (true)
            {
                using var socket = await trap.AcceptSocketAsync();
                Interlocked.Increment(ref trapped);
            }
        });
        var trapUrl = $"http://127.0.0.1:{((IPEndPoint)trap.LocalEndpoint).Port}";
        var clientPort = LoopbackCaller.FreePort();
        var managementPort = LoopbackCaller.FreePort();

        await using var program = ChildProcess.Start("dotnet",
        [
            ChildProcess.TestOutput("MsiProxy.dll"), "--urls", $"http://127.0.0.1:{clientPort}", $"--MsiProxy:Management:Urls=http://127.0.0.1:{managementPort}",
            $"--MsiProxy:Upstreams:0={emulator.BaseAddress.ToString().TrimEnd('/')}",
            "--MsiProxy:Clients:0:Name=app", "--MsiProxy:Clients:0:Address=127.0.0.2",
        ], environment: new Dictionary<string, string?>
        {
            ["HTTP_PROXY"] = trapUrl, ["http_proxy"] = trapUrl, ["HTTPS_PROXY"] = trapUrl, ["ALL_PROXY"] = trapUrl, ["NO_PROXY"] = "",
        });

        using var management = LoopbackCaller.Create("127.0.0.1", new Uri($"http://127.0.0.1:{managementPort}"), TimeSpan.FromSeconds(5));
        await Eventually(() => AnswersAsync(management, "/healthz"), TimeSpan.FromSeconds(60), "the program answers /healthz",
            () => program.Output);

        using var app = LoopbackCaller.Create("127.0.0.2", new Uri($"http://127.0.0.1:{clientPort}"));
        using var token = await app.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        using var instance = await app.SendAsync(ImdsRequests.Get("/metadata/instance?api-version=2021-02-01"));

        await CoreAssert.OkAsync(token);
        await CoreAssert.OkAsync(instance);
        Assert.Equal(2, CoreAssert.NonProbeRequests(emulator).Count);
        Assert.Equal(0, Volatile.Read(ref trapped));
    }
}
