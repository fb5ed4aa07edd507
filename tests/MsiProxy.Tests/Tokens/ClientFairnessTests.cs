using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Proxy;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Tokens;

public sealed class ClientFairnessTests
{
    [Fact]
    public async Task A_client_over_its_miss_budget_gets_429_while_its_hits_and_other_clients_are_unaffected()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = Settings(emulator, ("noisy", "127.0.0.2", ["*"]), ("quiet", "127.0.0.3", ["*"]));
        settings["MsiProxy:ClientRateLimit:RequestsPerSecond"] = "0.1";
        settings["MsiProxy:ClientRateLimit:Burst"] = "2";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var noisy = proxy.CreateClient("127.0.0.2");
        using var quiet = proxy.CreateClient("127.0.0.3");

        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(noisy, "https://one/")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(noisy, "https://two/")).Status);
        var refused = await TokenAsync(noisy, "https://three/");
        Assert.Equal((HttpStatusCode)429, refused.Status);
        Assert.Equal("too_many_requests", refused.Json.GetProperty("error").GetString());
        Assert.Contains("noisy", refused.Json.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        Assert.InRange(int.Parse(refused.RetryAfter!, System.Globalization.CultureInfo.InvariantCulture), 1, 10);
        Assert.Equal(2, TokenRequests(emulator).Count);

        // Hits cost the upstream nothing and are never limited.
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await TokenAsync(noisy, "https://one/")).Status);
        }

        // Another client has its own budget.
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(quiet, "https://three/")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(quiet, "https://four/")).Status);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(noisy, "https://three/")).Status); // now cached
        Assert.Equal(4, TokenRequests(emulator).Count);
    }
}
