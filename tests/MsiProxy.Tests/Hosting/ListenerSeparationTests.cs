using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Requests;

namespace MsiProxy.Tests.Hosting;

/// <summary>Issue rule 6: health on the management listener only, and client routes on the client listener only.</summary>
public sealed class ListenerSeparationTests
{
    [Fact]
    public async Task Health_and_readiness_answer_on_the_management_port()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var management = proxy.CreateManagementClient();

        using var health = await management.GetAsync("/healthz");
        Assert.Contains("Healthy", await CoreAssert.OkAsync(health));

        // Ready once an upstream answered: the start-up probe, a moment after start.
        await Eventually(() => AnswersAsync(management, "/readyz"), what: "/readyz answers 200");
        using var ready = await management.GetAsync("/readyz");
        Assert.Contains("Ready", await CoreAssert.OkAsync(ready));
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    public async Task Health_and_readiness_answer_reads_only(string path)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var management = proxy.CreateManagementClient();

        using var head = await management.SendAsync(new HttpRequestMessage(HttpMethod.Head, path));
        Assert.NotEqual(HttpStatusCode.MethodNotAllowed, head.StatusCode);
        using var post = await management.PostAsync(path, content: null);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/admin/clients")]
    public async Task Management_paths_are_404_on_the_client_port_even_for_a_registered_caller(string path)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.2", [])));
        using var client = proxy.CreateClient("127.0.0.2");

        using var response = await client.SendAsync(ImdsRequests.Get(path));

        await CoreAssert.ImdsExactAsync(response, HttpStatusCode.NotFound, CoreAssert.NotFoundBody);
        CoreAssert.NothingUpstream(emulator);
    }

    [Theory]
    [InlineData("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F")]
    [InlineData("/metadata/instance?api-version=2021-02-01")]
    [InlineData("/metadata/instance/compute?api-version=2021-02-01")]
    [InlineData("/metadata/versions")]
    public async Task Client_routes_are_404_on_the_management_port(string target)
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        // Even a caller registered with the proxy gets nothing through the management port.
        await using var proxy = await ProxyHost.StartAsync(CoreSettings.Proxy(emulator.BaseAddress, ("app", "127.0.0.1", [])));
        using var management = proxy.CreateManagementClient();

        using var response = await management.SendAsync(ImdsRequests.Get(target));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        CoreAssert.NothingUpstream(emulator);
    }
}
