using MsiProxy.Configuration;
using MsiProxy.ImdsEmulator;
using MsiProxy.Routing;

namespace MsiProxy.Demo;

/// <summary>
/// The proxy with the IMDS emulator embedded as its only upstream, on loopback, with 127.0.0.1 registered — a token
/// through the proxy with no Azure at all. It can never reach 169.254.169.254: the upstream list is forced to the
/// emulator after every other configuration source.
/// </summary>
internal sealed class DemoSetup : IAsyncDisposable
{
    public const string UserAssignedClientId = "8b4d6c3a-1f2e-4a5b-9c8d-7e6f5a4b3c2d";

    private readonly ImdsEmulatorServer _emulator;

    private DemoSetup(ImdsEmulatorServer emulator) => _emulator = emulator;

    /// <summary>Starts the emulator (its own Kestrel on an ephemeral loopback port).</summary>
    public static async Task<DemoSetup> StartAsync() => new(await ImdsEmulatorServer.StartAsync(new EmulatorOptions
    {
        UserAssigned = { new UserAssignedIdentity(UserAssignedClientId, "4c3b2a19-0f8e-4d7c-b6a5-948372615041",
            "/subscriptions/8d10da13-8125-4ba9-a717-bf7490507b3d/resourceGroups/msiproxy-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo-app") },
    }));

    /// <summary>The demo's settings, on top of the command line's: loopback listeners, one client, the emulator as upstream.</summary>
    public void Configure(WebApplicationBuilder builder)
    {
        var upstream = _emulator.BaseAddress.ToString().TrimEnd('/');
        var settings = new Dictionary<string, string?>
        {
            ["MsiProxy:Management:Urls"] = "http://127.0.0.1:8081",
            ["MsiProxy:Clients:0:Name"] = "demo-app",
            ["MsiProxy:Clients:0:Address"] = "127.0.0.1",
            ["MsiProxy:Clients:0:Identities:0"] = "system",
            ["MsiProxy:Clients:0:Identities:1"] = "client_id=" + UserAssignedClientId,
            ["MsiProxy:Prefetch:Resources:0"] = "https://management.azure.com/",
            ["MsiProxy:Health:Interval"] = "00:00:05",
            ["MsiProxy:Shutdown:ReadinessDelay"] = "00:00:00", // nothing watches a demo's readiness: Ctrl+C stops at once
        };
        if (string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            settings["urls"] = "http://127.0.0.1:8080";
        }

        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.PostConfigure<MsiProxyOptions>(options => options.Upstreams = [upstream]);
    }

    /// <summary>Once listening: print a curl that gets a token and a few that show refusals.</summary>
    public void PrintInstructionsWhenStarted(WebApplication app) => app.Lifetime.ApplicationStarted.Register(() =>
    {
        var listeners = app.Services.GetRequiredService<Listeners>();
        var client = listeners.ClientEndpoints[0];
        var host = client.Address.Equals(System.Net.IPAddress.Any) ? "127.0.0.1" : client.Address.ToString();
        var url = $"http://{host}:{client.Port}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/";
        Console.WriteLine($"""

            MsiProxy demo: the IMDS emulator at {_emulator.BaseAddress} is the upstream; 127.0.0.1 is registered as "demo-app".

              A token through the proxy (system-assigned identity, served from the prefetched cache):
                curl -s -H 'Metadata: true' '{url}'

              The demo app's user-assigned identity:
                curl -s -H 'Metadata: true' '{url}&client_id={UserAssignedClientId}'

              Refused — an identity demo-app is not bound to (400 "Identity not found", exactly as IMDS answers an unknown one):
                curl -s -H 'Metadata: true' '{url}&client_id=00000000-0000-0000-0000-000000000001'

              Refused — an unregistered caller, 127.0.0.2 (403):
                curl -s --interface 127.0.0.2 -H 'Metadata: true' '{url}'

              Health and metrics (management listener): curl -s http://127.0.0.1:{listeners.ManagementEndpoints[0].Port}/readyz

            """);
    });

    public ValueTask DisposeAsync() => _emulator.DisposeAsync();
}
