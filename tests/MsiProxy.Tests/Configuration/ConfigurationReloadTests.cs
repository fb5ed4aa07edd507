using System.Net;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.Options;
using MsiProxy.Configuration;
using MsiProxy.ImdsEmulator;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Proxy;
using MsiProxy.Tests.Management;
using MsiProxy.Upstreams;
using static MsiProxy.Tests.Tokens.ProxyCalls;

namespace MsiProxy.Tests.Configuration;

/// <summary>
/// A configuration reload (appsettings.json edited, a ConfigMap updated) changes the settings README marks "reloads:
/// yes" in the running proxy, and leaves those marked "no" as they were at start-up — shown for one of each kind on the
/// real proxy, by what it does next.
/// </summary>
public sealed class ConfigurationReloadTests
{
    private const string Key = "admin-key-0123456789";

    private static void Reload(ProxyHost proxy, params (string Key, string Value)[] changes)
    {
        var root = (IConfigurationRoot)proxy.Services.GetRequiredService<IConfiguration>();
        var memory = root.Providers.OfType<MemoryConfigurationProvider>().Single();
        foreach (var (key, value) in changes)
        {
            memory.Set(key, value);
        }

        root.Reload();
    }

    [Fact]
    public async Task Request_rules_and_the_admin_key_reload()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = Settings(emulator, ("app", "127.0.0.2", ["*"]));
        settings["MsiProxy:Management:ApiKey"] = Key;
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var app = proxy.CreateClient("127.0.0.2");
        using var oldKey = new AdminClient(proxy, Key);
        using var newKey = new AdminClient(proxy, Key + "-rotated");
        Assert.Equal(HttpStatusCode.BadRequest, (await TokenWithoutMetadataAsync(app)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await newKey.GetAsync("/admin/clients")).Status);

        Reload(proxy, ("MsiProxy:RequireMetadataHeader", "false"), ("MsiProxy:Management:ApiKey", Key + "-rotated"));

        Assert.Equal(HttpStatusCode.OK, (await TokenWithoutMetadataAsync(app)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await newKey.GetAsync("/admin/clients")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await oldKey.GetAsync("/admin/clients")).Status);
    }

    [Fact]
    public async Task A_reloaded_level_that_is_not_one_is_refused_with_a_warning_and_the_level_in_force_stays()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var settings = Settings(emulator, ("app", "127.0.0.2", ["*"]));
        settings["Serilog:MinimumLevel:Override:MsiProxy.Requests"] = "Information";
        await using var proxy = await ProxyHost.StartAsync(settings);
        using var app = proxy.CreateClient("127.0.0.2");

        Reload(proxy, ("Serilog:MinimumLevel:Override:MsiProxy.Requests", "Loud"));

        var refused = Assert.Single(await proxy.Logs.WaitForAsync("MsiProxy.Logging", 1));
        Assert.Equal(LogLevel.Warning, refused.Level);
        Assert.Equal("\"Serilog:MinimumLevel:Override:MsiProxy.Requests\" = \"Loud\" after a configuration reload is not a level; Information stays in force",
            refused.Message);
        Assert.Equal(("Serilog:MinimumLevel:Override:MsiProxy.Requests", "Loud", "Information"), (refused.Value("Key"), refused.Value("Value"), refused.Value("Level")));
        // Still Information: the next request is logged.
        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app)).Status);
        Assert.Single(await proxy.Logs.WaitForAsync("MsiProxy.Requests", 1));
    }

    /// <summary>
    /// The settings are bound once at start-up and shared: what reads them as fixed (<c>IOptions</c>) holds the very
    /// object the monitor started with, rather than a second binding of every configured client, and keeps it across a
    /// reload while the monitor moves on.
    /// </summary>
    [Fact]
    public async Task Settings_are_bound_once_and_what_does_not_reload_keeps_the_start_up_binding()
    {
        await using var emulator = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(emulator, ("app", "127.0.0.2", ["*"])));
        var monitor = proxy.Services.GetRequiredService<IOptionsMonitor<MsiProxyOptions>>();
        var atStartUp = proxy.Services.GetRequiredService<IOptions<MsiProxyOptions>>().Value;
        Assert.Same(monitor.CurrentValue, atStartUp);

        Reload(proxy, ("MsiProxy:RequireMetadataHeader", "false"));

        Assert.False(monitor.CurrentValue.RequireMetadataHeader);
        Assert.Same(atStartUp, proxy.Services.GetRequiredService<IOptions<MsiProxyOptions>>().Value);
        Assert.True(atStartUp.RequireMetadataHeader);
    }

    [Fact]
    public async Task The_upstream_list_does_not_reload_it_changes_through_the_admin_api()
    {
        await using var first = await ImdsEmulatorServer.StartAsync();
        await using var second = await ImdsEmulatorServer.StartAsync();
        await using var proxy = await ProxyHost.StartAsync(Settings(first, ("app", "127.0.0.2", ["*"])));
        using var app = proxy.CreateClient("127.0.0.2");

        Reload(proxy, ("MsiProxy:Upstreams:0", second.BaseAddress.ToString().TrimEnd('/')));

        Assert.Equal(HttpStatusCode.OK, (await TokenAsync(app, "https://after-the-reload.example/")).Status);
        Assert.Single(TokenRequests(first), r => r.Query.Contains("after-the-reload", StringComparison.Ordinal));
        Assert.Empty(TokenRequests(second));
        Assert.Equal([first.BaseAddress.ToString().TrimEnd('/')], proxy.Get<UpstreamSet>().Current);
    }

    private static async Task<HttpResponseMessage> TokenWithoutMetadataAsync(HttpClient app)
    {
        using var request = ImdsRequests.Token(Arm, metadata: false);
        return await app.SendAsync(request);
    }
}
