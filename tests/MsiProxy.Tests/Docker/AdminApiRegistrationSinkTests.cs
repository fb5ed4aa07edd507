using System.Net;
using Microsoft.Extensions.Options;
using MsiProxy.Clients;
using MsiProxy.Configuration;
using MsiProxy.Docker;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Upstreams;

namespace MsiProxy.Tests.Docker;

/// <summary>The standalone monitor's sink, driving a real proxy through its real admin API.</summary>
public sealed class AdminApiRegistrationSinkTests
{
    private const string ApiKey = "admin-key-0123456789abcdef";
    private const string Resource = "https://management.azure.com/";

    [Fact]
    public async Task Registers_pending_then_ready_lists_and_deregisters_only_its_own_container_and_sets_upstreams()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        var settings = ProxyHost.Settings(emulator.BaseAddress);
        settings["MsiProxy:Management:ApiKey"] = ApiKey;
        await using var proxy = await ProxyHost.StartAsync(settings);
        var sink = CreateSink(proxy.ManagementAddress);
        var registration = new ClientRegistration
        {
            Name = "app",
            Address = AddressRange.Parse("127.0.0.2"),
            Identities = [IdentityBinding.System],
            WorkloadId = "c1",
            Source = RegistrationSources.Docker,
            Ready = false,
        };

        await sink.RegisterAsync(registration, CancellationToken.None);
        Assert.Equal((HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(1)), await TokenAsync(proxy));

        await sink.RegisterAsync(registration with { Ready = true }, CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(proxy)).Status);
        Assert.Equal([new ManagedRegistration("app", "c1")], await sink.ListAsync(CancellationToken.None));

        // A late "die" of an older container with the same name must not remove the current one.
        Assert.False(await sink.DeregisterAsync("app", "c0-old", CancellationToken.None));
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(proxy)).Status);
        Assert.True(await sink.DeregisterAsync("app", "c1", CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, (await TokenAsync(proxy)).Status);

        var upstreams = new[] { second.BaseAddress.ToString().TrimEnd('/'), emulator.BaseAddress.ToString().TrimEnd('/') };
        await sink.SetUpstreamsAsync(upstreams, CancellationToken.None);
        Assert.Equal(upstreams, proxy.Get<UpstreamSet>().Current);
    }

    [Fact]
    public async Task A_wrong_key_is_an_error_not_a_silent_success()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = ProxyHost.Settings(emulator.BaseAddress);
        settings["MsiProxy:Management:ApiKey"] = ApiKey;
        await using var proxy = await ProxyHost.StartAsync(settings);
        var sink = CreateSink(proxy.ManagementAddress, "wrong-key-0123456789abcdef");
        var registration = new ClientRegistration
        {
            Name = "app",
            Address = AddressRange.Parse("127.0.0.2"),
            WorkloadId = "c1",
            Source = RegistrationSources.Docker,
        };

        var error = await Assert.ThrowsAsync<HttpRequestException>(() => sink.RegisterAsync(registration, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, error.StatusCode);
        Assert.Null(proxy.Get<ClientRegistry>().Get("app"));
    }

    private static AdminApiRegistrationSink CreateSink(Uri management, string key = ApiKey)
    {
        var services = new ServiceCollection().AddHttpClient().BuildServiceProvider();
        return new AdminApiRegistrationSink(services.GetRequiredService<IHttpClientFactory>(),
            Options.Create(new StandaloneMonitorOptions { AdminUrl = management.ToString(), ApiKey = key }),
            Options.Create(new MsiProxyOptions()));
    }

    private static async Task<(HttpStatusCode Status, TimeSpan? RetryAfter)> TokenAsync(ProxyHost proxy)
    {
        using var client = proxy.CreateClient("127.0.0.2");
        using var request = ImdsRequests.Token(Resource);
        using var response = await client.SendAsync(request);
        return (response.StatusCode, response.Headers.RetryAfter?.Delta);
    }
}
