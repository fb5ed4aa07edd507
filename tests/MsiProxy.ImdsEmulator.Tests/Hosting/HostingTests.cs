using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using MsiProxy.Testing.Emulator;

namespace MsiProxy.ImdsEmulator.Tests.Hosting;

public sealed class HostingTests
{
    [Fact]
    public async Task Server_reports_the_bound_ephemeral_port_on_loopback()
    {
        await using var server = await ImdsEmulatorServer.StartAsync();

        Assert.Equal("127.0.0.1", server.BaseAddress.Host);
        Assert.NotEqual(0, server.BaseAddress.Port);
    }

    [Fact]
    public async Task Server_binds_the_given_address()
    {
        await using var server = await ImdsEmulatorServer.StartAsync(url: "http://127.0.0.9:0");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = server.BaseAddress };

        using var response = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));

        Assert.Equal("127.0.0.9", server.BaseAddress.Host);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Emulator_can_be_hosted_in_any_web_application_with_the_registered_time_provider()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2030-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddImdsEmulator(new EmulatorOptions { TokenLifetime = TimeSpan.FromHours(1) });
        await using var app = builder.Build();
        app.MapGet("/host-owned", () => "mine");
        app.MapImdsEmulator();
        await app.StartAsync();
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri(app.Urls.First()) };

        using var token = await client.SendAsync(ImdsRequests.Token("https://management.azure.com/"));
        var body = await ImdsRequests.ReadJsonAsync(token);
        var hostOwned = await client.GetStringAsync("/host-owned");

        Assert.Equal((time.GetUtcNow().ToUnixTimeSeconds() + 3600).ToString(), body.GetProperty("expires_on").GetString());
        Assert.Equal("mine", hostOwned);
        Assert.Single(app.Services.GetRequiredService<EmulatorState>().IssuedTokens);
        await app.StopAsync();
    }
}
