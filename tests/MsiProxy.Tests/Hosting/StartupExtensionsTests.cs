using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using MsiProxy.Configuration;
using MsiProxy.Hosting;

namespace MsiProxy.Tests.Hosting;

/// <summary>
/// Exit code 2 means "your configuration is wrong" and nothing else: the proxy's own configuration errors get it with
/// their message, any other failure keeps its exception — an iptables error or a library's InvalidOperationException
/// reported as "the configuration is invalid" would send the operator looking in the wrong place. A listener that cannot
/// bind is the operator's to fix too, so it gets exit code 5 and the address, not a stack trace.
/// </summary>
[Collection(Serial.Name)] // Console.Error is the process's
public sealed class StartupExtensionsTests
{
    [Fact]
    public async Task A_configuration_exception_exits_2_with_its_message_and_no_stack_trace()
    {
        var builder = Builder(new ConfigurationException("MsiProxy:Example = 'x' is not an example"));
        var stderr = new StringWriter();
        var previous = Console.Error;
        Console.SetError(stderr);
        int exit;
        try
        {
            exit = await builder.RunMsiProxyAsync();
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.Equal(2, exit);
        Assert.Contains("MsiProxy:Example = 'x' is not an example", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Any_other_InvalidOperationException_is_not_a_configuration_error()
    {
        // Thrown from this assembly's code path inside the proxy: its Source is whatever the runtime makes it.
        var failure = new InvalidOperationException("iptables-restore could not write the pod rules (exit 4)");
        var builder = Builder(failure);
        var stderr = new StringWriter();
        var previous = Console.Error;
        Console.SetError(stderr);
        try
        {
            var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => builder.RunMsiProxyAsync());
            Assert.Same(failure, thrown);
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.DoesNotContain("configuration is invalid", stderr.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("client")]
    [InlineData("management")]
    public async Task A_port_another_process_holds_exits_5_naming_the_address(string listener)
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var taken = $"http://127.0.0.1:{((IPEndPoint)holder.LocalEndpoint).Port}";

        var (exit, stderr) = await RunAsync(Builder(listener == "client" ? taken : null, listener == "management" ? taken : null));

        Assert.Equal(5, exit);
        Assert.Contains(taken, stderr, StringComparison.Ordinal);
        Assert.Contains("in use by another process", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_address_this_machine_does_not_have_exits_5_saying_so()
    {
        // Binding sends nothing; 192.0.2.0/24 is reserved for documentation, so no machine running the tests holds it.
        var (exit, stderr) = await RunAsync(Builder("http://192.0.2.1:8080", null));

        Assert.Equal(5, exit);
        Assert.Contains("http://192.0.2.1:8080", stderr, StringComparison.Ordinal);
        Assert.Contains("no such address", stderr, StringComparison.Ordinal);
    }

    private static async Task<(int Exit, string Stderr)> RunAsync(WebApplicationBuilder builder)
    {
        var stderr = new StringWriter();
        var previous = Console.Error;
        Console.SetError(stderr);
        try
        {
            // Bounded: were the bind to succeed (a machine that does hold the address), the proxy would run on.
            return (await builder.RunMsiProxyAsync().WaitAsync(TimeSpan.FromSeconds(60)), stderr.ToString());
        }
        finally
        {
            Console.SetError(previous);
        }
    }

    /// <summary>The real composition, with a hosted service that fails start-up before the listeners open.</summary>
    private static WebApplicationBuilder Builder(Exception startFailure)
    {
        var builder = Builder(null, null);
        builder.Services.AddHostedService(_ => new FailingStart(startFailure));
        return builder;
    }

    /// <summary>The real composition on loopback ports of its own unless told which to listen on.</summary>
    private static WebApplicationBuilder Builder(string? clientUrl, string? managementUrl)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Test", ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["urls"] = clientUrl ?? "http://127.0.0.1:0",
            ["MsiProxy:Management:Urls"] = managementUrl ?? "http://127.0.0.1:0",
            ["MsiProxy:Upstreams:0"] = "http://127.0.0.1:9", // loopback discard port: nothing is sent anywhere else
        });
        builder.AddMsiProxyTelemetry();
        builder.AddMsiProxy();
        return builder;
    }

    private sealed class FailingStart(Exception failure) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.FromException(failure);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
