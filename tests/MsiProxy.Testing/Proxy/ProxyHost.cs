using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MsiProxy.Hosting;
using MsiProxy.Routing;
using MsiProxy.Testing.Net;

namespace MsiProxy.Testing.Proxy;

/// <summary>
/// The real MsiProxy — the same composition as Program.cs — on Kestrel, client and management listeners on
/// 127.0.0.1 with ephemeral ports. Start it with the settings a test needs; <see cref="UpstreamGuard"/> refuses to
/// start it unless every upstream is loopback (or a test-made network address).
/// </summary>
public sealed class ProxyHost : IAsyncDisposable
{
    private ProxyHost(WebApplication app, LogCapture logs)
    {
        App = app;
        Logs = logs;
        var listeners = app.Services.GetRequiredService<Listeners>();
        ClientAddress = new Uri($"http://127.0.0.1:{listeners.ClientEndpoints[0].Port}");
        ManagementAddress = new Uri($"http://127.0.0.1:{listeners.ManagementEndpoints[0].Port}");
    }

    public WebApplication App { get; }
    public LogCapture Logs { get; }
    public Uri ClientAddress { get; }
    public Uri ManagementAddress { get; }
    public IServiceProvider Services => App.Services;

    public T Get<T>()
        where T : notnull => App.Services.GetRequiredService<T>();

    /// <param name="settings">Configuration, e.g. ["MsiProxy:Upstreams:0"] = emulator.BaseAddress.</param>
    /// <param name="configureServices">Test overrides (e.g. a FakeTimeProvider), applied after the product's registrations.</param>
    /// <param name="testNetworkAddresses">Non-loopback upstream addresses the test itself created (netns, internal docker network).</param>
    public static async Task<ProxyHost> StartAsync(IDictionary<string, string?> settings, Action<IServiceCollection>? configureServices = null,
        IReadOnlyCollection<IPAddress>? testNetworkAddresses = null)
    {
        var all = new Dictionary<string, string?>(settings)
        {
            ["urls"] = settings.TryGetValue("urls", out var urls) && urls is not null ? urls : "http://127.0.0.1:0",
            ["MsiProxy:Management:Urls"] = settings.TryGetValue("MsiProxy:Management:Urls", out var management) && management is not null
                ? management : "http://127.0.0.1:0",
            // Nothing watches a test proxy's readiness: stopping it does not wait (tests of the drain set their own).
            ["MsiProxy:Shutdown:ReadinessDelay"] = settings.TryGetValue("MsiProxy:Shutdown:ReadinessDelay", out var delay) && delay is not null
                ? delay : "00:00:00",
        };
        UpstreamGuard.Check(all.Where(p => p.Key.StartsWith("MsiProxy:Upstreams:", StringComparison.Ordinal)).Select(p => p.Value),
            testNetworkAddresses);

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Test",
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(all);
        builder.AddMsiProxyTelemetry();
        builder.AddMsiProxy();
        var logs = new LogCapture();
        builder.Logging.AddProvider(logs);
        configureServices?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapMsiProxy();
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync(); // a refused start-up (a test of it) leaves nothing running behind
            throw;
        }

        // Belt and braces: what the running proxy actually uses.
        UpstreamGuard.Check(app.Services.GetRequiredService<MsiProxy.Upstreams.UpstreamSet>().Current, testNetworkAddresses);
        return new ProxyHost(app, logs);
    }

    /// <summary>Settings for a proxy in front of <paramref name="upstream"/> with the given clients (name, address, identities).</summary>
    public static Dictionary<string, string?> Settings(Uri upstream, params (string Name, string Address, string[] Identities)[] clients)
    {
        var settings = new Dictionary<string, string?>
        {
            ["MsiProxy:Upstreams:0"] = upstream.ToString().TrimEnd('/'),
            ["MsiProxy:Health:Interval"] = "00:00:01",
            ["MsiProxy:Health:Timeout"] = "00:00:05",
        };
        for (var i = 0; i < clients.Length; i++)
        {
            settings[$"MsiProxy:Clients:{i}:Name"] = clients[i].Name;
            settings[$"MsiProxy:Clients:{i}:Address"] = clients[i].Address;
            for (var j = 0; j < clients[i].Identities.Length; j++)
            {
                settings[$"MsiProxy:Clients:{i}:Identities:{j}"] = clients[i].Identities[j];
            }
        }

        return settings;
    }

    /// <summary>An HttpClient to the client-facing listener whose connections come from <paramref name="source"/>.</summary>
    public HttpClient CreateClient(string source = "127.0.0.1") => LoopbackCaller.Create(source, ClientAddress);

    public HttpClient CreateManagementClient() => LoopbackCaller.Create("127.0.0.1", ManagementAddress);

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
