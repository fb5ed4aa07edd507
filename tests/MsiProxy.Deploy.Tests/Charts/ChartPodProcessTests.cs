using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using MsiProxy.Deploy.Tests.Support;
using MsiProxy.Testing.Emulator;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>
/// The chart's pod as a real process: MsiProxy.dll started with nothing but the rendered pod's environment and files
/// (laid out under a temp folder), the emulator as its upstream. What the values say reaches the running proxy only
/// if appsettings.json really is read from the content root the chart points ASP.NET Core at.
/// </summary>
public sealed class ChartPodProcessTests
{
    private const string Identity = "5b0c7e1a-3d2f-4a6b-9c8d-7e6f5a4b3c2d";
    private const string AdminKey = "chart-admin-key-0123456789";

    [Fact]
    public async Task The_proxy_started_as_the_chart_pod_serves_what_the_values_say()
    {
        await using var imds = await EmulatorProcess.StartAsync(["--Emulator:UserAssigned:0:ClientId=" + Identity]);
        var (clientPort, managementPort) = (LoopbackCaller.FreePort(), LoopbackCaller.FreePort());
        // The msiserviceclient mode (static clients, admin API, no pod discovery), pointed at the emulator; one key that
        // only the generic config map can set: header-less requests are served.
        var render = HelmChart.MsiProxy.Render("msiserviceclient", $$"""
            upstreams: ["{{imds.ImdsAddress.GetLeftPart(UriPartial.Authority)}}"]
            clients:
              - name: app
                address: 127.0.0.2
                identities: ["client_id={{Identity}}"]
            ports:
              client: {{clientPort}}
              management: {{managementPort}}
            adminApi:
              enabled: true
              apiKey: {{AdminKey}}
            config:
              MsiProxy:
                RequireMetadataHeader: false
            """);
        using var root = new TemporaryDirectory("msi-proxy-pod-");
        var pod = new ProxyPod(render).LayOut(root.Path);
        UpstreamGuard.Check(pod.Options.EffectiveUpstreams);

        await using var proxy = StartProxy(pod.Environment, imds.ImdsAddress);
        using var management = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{managementPort}") };
        await Eventually(async () =>
        {
            proxy.ThrowIfExited();
            return await AnswersAsync(management, "/readyz");
        }, TimeSpan.FromSeconds(30), "the proxy is ready", () => proxy.Output);

        // The static client from values, with its identity; a request without "Metadata: true" (config's key).
        using var app = LoopbackCaller.Create("127.0.0.2", new Uri($"http://127.0.0.1:{clientPort}"));
        using var token = await app.SendAsync(ImdsRequests.Token("https://vault.azure.net", metadata: false));
        Assert.True(token.StatusCode == HttpStatusCode.OK, await token.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty((await ImdsRequests.ReadJsonAsync(token)).GetProperty("access_token").GetString()));
        using var control = new HttpClient { BaseAddress = imds.ControlAddress };
        var received = JsonDocument.Parse(await control.GetStringAsync("/emulator/requests")).RootElement.EnumerateArray()
            .Where(r => r.GetProperty("path").GetString() == ImdsRequests.TokenPath).ToList();
        Assert.Contains(received, r => r.GetProperty("query").GetString()!.Contains("client_id=" + Identity, StringComparison.Ordinal));

        // Anyone else is refused: the values registered nobody but the app.
        using var stranger = LoopbackCaller.Create("127.0.0.3", new Uri($"http://127.0.0.1:{clientPort}"));
        using var refused = await stranger.SendAsync(ImdsRequests.Token("https://vault.azure.net"));
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);

        // The admin key reached the proxy as the file the chart's Secret puts in the pod.
        using var anonymous = await management.GetAsync("/admin/clients");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var listing = new HttpRequestMessage(HttpMethod.Get, "/admin/clients") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", AdminKey) } };
        using var clients = await management.SendAsync(listing);
        Assert.Equal(HttpStatusCode.OK, clients.StatusCode);
        Assert.Contains("\"app\"", await clients.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // What the admin API registers is on the pod's state volume when the call answers (MsiProxy__StateFile of the pod).
        using var register = new HttpRequestMessage(HttpMethod.Put, "/admin/clients/late")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", AdminKey) },
            Content = new StringContent("{\"address\":\"127.0.0.4\"}", System.Text.Encoding.UTF8, "application/json"),
        };
        using var registered = await management.SendAsync(register);
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        // The first change writes the snapshot (state.json), later ones its journal (state.json.journal): either holds it.
        var stateFiles = Directory.GetFiles(root.Path + ProxyPod.StateDirectory, "state.json*");
        Assert.Contains(stateFiles, f => File.ReadAllText(f).Contains("\"late\"", StringComparison.Ordinal));

        // The helm test of the client path, run as its pod would (busybox sh, wget): it passes against the proxy (the
        // kubelet's $(HOST_IP) is loopback here) and fails against IMDS itself (the emulator), which is what it tells apart.
        var testPod = render.TestPod($"{HelmChart.Release}-msi-proxy-test-client-path");
        var script = ((List<object?>)YamlValues.At(testPod, "spec.containers.0.command")!).Cast<string>().ToList();
        var tokenUrl = (string)((List<object?>)YamlValues.At(testPod, "spec.containers.0.env")!).Cast<IDictionary<string, object?>>()
            .Single(e => (string?)e["name"] == "TOKEN_URL")["value"]!;
        Assert.Equal(["sh", "-c"], script[..2]);
        var throughProxy = await RunBusyboxAsync(script[2], tokenUrl.Replace("$(HOST_IP)", "127.0.0.1", StringComparison.Ordinal));
        Assert.True(throughProxy.ExitCode == 0, throughProxy.Output);
        var direct = await RunBusyboxAsync(script[2], imds.ImdsAddress.GetLeftPart(UriPartial.Authority) + new Uri(tokenUrl.Replace("$(HOST_IP)", "h", StringComparison.Ordinal)).PathAndQuery);
        Assert.True(direct.ExitCode == 1, direct.Output);
        Assert.Contains("400", direct.Output, StringComparison.Ordinal);
    }

    private static async Task<(int ExitCode, string Output)> RunBusyboxAsync(string script, string tokenUrl)
    {
        // Debian's busybox-static (tests/run-all.sh installs it) runs wget and timeout as applets, as the test image does.
        await using var busybox = ChildProcess.Start("busybox", ["sh", "-c", script], environment: new Dictionary<string, string?> { ["TOKEN_URL"] = tokenUrl });
        var exit = await busybox.WaitForExitAsync(TimeSpan.FromSeconds(30))
            ?? throw new TimeoutException("the helm test script did not finish within 30 s (its own timeout is 10 s)");
        return (exit, busybox.Output);
    }

    // Only the pod's environment: nothing of this machine's ASP.NET Core, .NET or proxy settings leaks in. The listeners
    // the chart puts on every interface ("+") are moved to loopback: a test listens on nothing else. The upstream is
    // pinned on the command line too (it wins over the file): were the file not read, the proxy must still not fall
    // back to the product's default, the real IMDS.
    private static ChildProcess StartProxy(Dictionary<string, string> podEnvironment, Uri upstream)
    {
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(name => name != "DOTNET_CLI_TELEMETRY_OPTOUT")
            .Where(name => name.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase) || name.StartsWith("DOTNET_", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("MsiProxy", StringComparison.OrdinalIgnoreCase) || name.StartsWith("OTEL_", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith("_PROXY", StringComparison.OrdinalIgnoreCase))
            .ToDictionary(name => name, string? (_) => null);
        foreach (var (name, value) in podEnvironment)
        {
            environment[name] = value.Replace("http://+:", "http://127.0.0.1:", StringComparison.Ordinal);
        }

        return ChildProcess.Start("dotnet", [ChildProcess.TestOutput("MsiProxy.dll"), "--MsiProxy:Upstreams:0=" + upstream.GetLeftPart(UriPartial.Authority)],
            environment: environment);
    }
}
