using MsiProxy.Testing.Net;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Testing.Processes;

/// <summary>
/// The real program, <c>dotnet MsiProxy.dll</c>, in a process of its own: client and management listeners on free
/// loopback ports, one client <c>app</c> at 127.0.0.2, and as its only upstream an emulator the test started (checked by
/// <see cref="UpstreamGuard"/>). Started, it answers <c>/healthz</c>.
/// </summary>
public sealed class ProxyProgram : IAsyncDisposable
{
    private ProxyProgram(ChildProcess process, Uri client, Uri management)
    {
        Process = process;
        ClientAddress = client;
        ManagementAddress = management;
    }

    public ChildProcess Process { get; }

    public Uri ClientAddress { get; }

    public Uri ManagementAddress { get; }

    /// <param name="upstream">The emulator's base address.</param>
    /// <param name="settings">More environment variables (<c>MsiProxy__…</c>), added to or replacing the defaults.</param>
    public static async Task<ProxyProgram> StartAsync(Uri upstream, IReadOnlyDictionary<string, string?>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        var address = upstream.ToString().TrimEnd('/');
        UpstreamGuard.Check([address]);
        var client = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var management = new Uri($"http://127.0.0.1:{LoopbackCaller.FreePort()}");
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["urls"] = client.ToString().TrimEnd('/'),
            ["MsiProxy__Management__Urls"] = management.ToString().TrimEnd('/'),
            ["MsiProxy__Upstreams__0"] = address, // never the product default (169.254.169.254)
            ["MsiProxy__Clients__0__Name"] = "app",
            ["MsiProxy__Clients__0__Address"] = "127.0.0.2",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            environment[key] = value;
        }

        var process = ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll")], environment: environment);
        var program = new ProxyProgram(process, client, management);
        using var probe = program.CreateManagementClient();
        await Waiting.Eventually(async () => !process.HasExited && await Waiting.AnswersAsync(probe, "/healthz").ConfigureAwait(false),
            what: "the proxy process answers /healthz", details: () => process.StandardOutput + process.StandardError).ConfigureAwait(false);
        return program;
    }

    /// <summary>A client of the management listener.</summary>
    public HttpClient CreateManagementClient() => LoopbackCaller.Create("127.0.0.1", ManagementAddress, TimeSpan.FromSeconds(2));

    /// <summary>A client of the client listener whose connections come from <paramref name="caller"/> (a loopback address).</summary>
    public HttpClient CreateClient(string caller) => LoopbackCaller.Create(caller, ClientAddress);

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
