using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Tokens;

[Collection(CapturedLogsRunAlone.Name)]
public sealed class PrefetchTests
{
    [Fact]
    public async Task A_client_with_warm_resources_gets_its_first_token_from_the_cache()
    {
        var identity = UserAssigned(0);
        await using var emulator = await ImdsEmulatorServer.StartAsync(WithUserAssigned(1));
        var settings = Settings(emulator, ("app", "127.0.0.2", [$"client_id={identity.ClientId}"]));
        settings["MsiProxy:Clients:0:Prefetch:0"] = "https://vault.azure.net";
        settings["MsiProxy:Prefetch:Resources:0"] = Arm;
        await using var proxy = await ProxyHost.StartAsync(settings);

        await Eventually(() => TokenRequests(emulator).Count(r => r.Status == 200) == 2, what: "prefetch of both resources");
        var warmedAt = TokenRequests(emulator).Max(r => r.ArrivedAt);
        Assert.All(TokenRequests(emulator), r => Assert.Contains($"client_id={identity.ClientId}", r.Query, StringComparison.Ordinal));

        using var app = proxy.CreateClient("127.0.0.2");
        var asked = DateTimeOffset.UtcNow;
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, "https://vault.azure.net")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, Arm)).Status);

        Assert.True(warmedAt < asked);
        Assert.Equal(2, TokenRequests(emulator).Count);
        // The request log line is written after the response went out.
        IEnumerable<string?> Outcomes() => proxy.Logs.Events.Where(e => e.Category == RequestRecorder.RequestCategory).Select(e => e.Value("Outcome"));
        await Eventually(() => Outcomes().Count() == 2);
        Assert.Equal(["hit", "hit"], Outcomes());
    }
}
