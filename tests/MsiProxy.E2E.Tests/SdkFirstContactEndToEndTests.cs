using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MsiProxy.Testing.Clients;
using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.E2E.Tests;

/// <summary>
/// A container's first token request, made by a real SDK the moment the container runs, in the VM rig. The SDK is
/// this machine's dotnet or node run in the container's network namespace (<see cref="ContainerNamespace"/>) with no
/// endpoint override: it calls http://169.254.169.254 from the container's address, through the bridge and the VM's
/// host rules, like the container's own processes. The proxy's engine connection runs through a
/// <see cref="DockerEventsValve"/> that holds its event stream back while the client runs, so the request always
/// arrives before the monitor has seen the container's start event — the race at its worst — and only caller
/// discovery can let it through.
/// </summary>
[Trait("Category", "E2E")]
public sealed partial class SdkFirstContactEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan ClientBound = TimeSpan.FromSeconds(20);

    [SkippableTheory]
    [InlineData(SdkKind.DefaultAzureCredential)] // Azure.Identity (.NET): a probe without Metadata first, with a 1 s timeout
    [InlineData(SdkKind.Js)] // @azure/identity ManagedIdentityCredential (Node)
    public async Task An_sdk_started_with_its_container_gets_the_labelled_identity_on_its_first_try_and_an_unlabelled_containers_sdk_is_refused(SdkKind sdk)
    {
        var unavailable = VmNetwork.WhyUnavailable();
        Skip.If(unavailable is not null, unavailable);
        SdkClientRunner.Prepare(sdk); // built before the container starts: nothing delays the client's first request
        await using var lab = await VmLab.StartAsync(output);
        lab.CreateNetwork("apps");
        var valve = lab.Rig.StartEventsValve();
        await lab.StartProxyAsync(extra: ["--MsiProxy:Docker:Endpoint=" + valve.Endpoint, "--Serilog:MinimumLevel:Override:MsiProxy.Docker.ContainerMonitor=Debug"]);
        var probes = sdk == SdkKind.DefaultAzureCredential ? 1 : 0;

        // A labelled container and its SDK, started together while the monitor hears no engine event.
        var resource = $"https://{VmLab.Marker("sdk-first")}.example/";
        var (app, result) = await StartWithClientAsync(lab, valve, "app", sdk, resource, "msi-proxy.client=true", "msi-proxy.identities=" + VmNetwork.ClientId);

        Assert.True(result is { Ok: true, ExitCode: 0, TimedOut: false }, "the SDK did not get its token on its first try: " + result);
        using (var claims = JwtPayload(result.Token!))
        {
            Assert.Equal(VmNetwork.ClientId, claims.RootElement.GetProperty("appid").GetString()); // the identity the label grants
            Assert.Equal(resource.TrimEnd('/'), claims.RootElement.GetProperty("aud").GetString());
        }

        // What reached the proxy from the container: the probe (answered at once, before any hold), then one token
        // request, served; nothing refused, nothing retried.
        var decisions = await lab.DecisionsForAsync(app.Address, expected: probes + 1);
        Report("labelled", sdk, result, decisions);
        Assert.Equal([.. Enumerable.Repeat("invalid:metadata_header 400", probes), "fetched 200"], decisions.Select(Describe));
        if (probes == 1)
        {
            // Answered before any hold (a hold lasts up to MsiProxy:HoldTimeout, 2 s): within the SDK's own 1 s probe timeout.
            // A tighter bound measured this loaded machine rather than the proxy.
            Assert.True(decisions[0].GetProperty("DurationMs").GetDouble() < 1000, "the probe was not answered at once: " + decisions[0]);
        }

        // IMDS saw exactly one request for it: from the proxy, with Metadata: true, for the granted identity.
        var upstream = Assert.Single(await lab.ImdsRequestsWithAsync(resource[8..^1]));
        Assert.Equal("/metadata/identity/oauth2/token", upstream.GetProperty("path").GetString());
        Assert.Equal(VmNetwork.VmAddress, upstream.GetProperty("callerAddress").GetString());
        Assert.Equal("true", upstream.GetProperty("headers").GetProperty("Metadata").GetString());
        Assert.Contains("client_id=" + VmNetwork.ClientId, upstream.GetProperty("query").GetString(), StringComparison.Ordinal);

        // The monitor had not seen the container start: the daemon's start event was held in the valve, and the
        // monitor logs it only once the valve opens — after it had registered the container (by discovery) and
        // answered the token request.
        await OpenAndAwaitStartEventAsync(lab, valve, app.Container);
        var log = lab.ProxyLog();
        var registered = Index(log, "LogRegistered", e => e.GetProperty("Client").GetString() == "app");
        var answered = Index(log, "Decision", e => e.GetProperty("ClientName").GetString() == "app" && e.GetProperty("Decision").GetString() == "fetched");
        var startSeen = Index(log, "LogEvent", e => IsStartOf(e, app.Container));
        Assert.True(registered < answered && answered < startSeen,
            $"expected: registered ({registered}), token answered ({answered}), then the start event seen ({startSeen}):\n{lab.Proxy.Output}");

        // An unlabelled container and its SDK, the same way: refused cleanly once discovery has found it unlabelled
        // (no timeout, no retry loop), and its request never reaches IMDS.
        var strangerResource = $"https://{VmLab.Marker("sdk-stranger")}.example/";
        var (stranger, refused) = await StartWithClientAsync(lab, valve, "stranger", sdk, strangerResource);
        Assert.True(refused is { Ok: false, ExitCode: 1, TimedOut: false }, "expected a clean refusal: " + refused);
        var strangerDecisions = await lab.DecisionsForAsync(stranger.Address, expected: probes + 1);
        Report("unlabelled", sdk, refused, strangerDecisions);
        Assert.Equal([.. Enumerable.Repeat("invalid:metadata_header 400", probes), "denied:unregistered 403"], strangerDecisions.Select(Describe));
        if (sdk == SdkKind.Js)
        {
            Assert.Contains($"Caller {stranger.Address} is not a registered client", refused.Message, StringComparison.Ordinal);
        }

        await OpenAndAwaitStartEventAsync(lab, valve, stranger.Container);
        Assert.Empty(await lab.ImdsRequestsWithAsync(strangerResource[8..^1]));
        lab.Passed();
    }

    /// <summary>
    /// Closes the valve, starts the container, and at once runs the SDK in its network namespace: the client
    /// process starts as soon as the container's namespace exists (a few ms after <c>docker run -d</c> returns).
    /// </summary>
    private async Task<(ContainerNamespace Namespace, SdkClientResult Result)> StartWithClientAsync(VmLab lab, DockerEventsValve valve,
        string name, SdkKind sdk, string resource, params string[] labels)
    {
        valve.Close();
        var watch = Stopwatch.StartNew();
        var id = lab.Run(name, "apps", labels);
        var container = ContainerNamespace.Of(lab.Rig, id);
        var started = watch.Elapsed;
        var result = await SdkClientRunner.RunTransparentAsync(container,
            new SdkClientRequest(sdk, resource) { ClientId = VmNetwork.ClientId, Timeout = ClientBound });
        output.WriteLine($"{name}: docker run -d + namespace {started.TotalMilliseconds:F0} ms, client {result.Elapsed.TotalMilliseconds:F0} ms");
        return (container, result);
    }

    /// <summary>The start event must have been held (the daemon did send it); once let through, the monitor logs it.</summary>
    private static async Task OpenAndAwaitStartEventAsync(VmLab lab, DockerEventsValve valve, string containerId)
    {
        Assert.Matches(HeldStartEvent(containerId), valve.Held);
        valve.Open();
        await Eventually(() => Task.FromResult(lab.ProxyLog().Any(e => IsStartOf(e, containerId))), VmLab.Soon,
            details: () => $"the monitor never saw the start event of {containerId}");
    }

    private static bool IsStartOf(JsonElement logEvent, string containerId) =>
        VmLab.EventName(logEvent) == "LogEvent" && logEvent.GetProperty("Action").GetString() == "start"
        && logEvent.GetProperty("ContainerId").GetString() == containerId;

    private static Regex HeldStartEvent(string containerId) =>
        new($"\\{{\"status\":\"start\",\"id\":\"{containerId}\"", RegexOptions.CultureInvariant);

    private static int Index(List<JsonElement> log, string eventName, Func<JsonElement, bool> matches)
    {
        var index = log.FindIndex(e => VmLab.EventName(e) == eventName && matches(e));
        Assert.True(index >= 0, $"no {eventName} event of that kind in the proxy's log");
        return index;
    }

    private static string Describe(JsonElement decision) =>
        $"{decision.GetProperty("Decision").GetString()} {decision.GetProperty("Status").GetInt32()}";

    private void Report(string what, SdkKind sdk, SdkClientResult result, List<JsonElement> decisions) =>
        output.WriteLine($"{sdk} {what}: exit {result.ExitCode} in {result.Elapsed.TotalMilliseconds:F0} ms; {decisions.Count} request(s) at the proxy: "
            + string.Join(", ", decisions.Select(d => $"{Describe(d)} in {d.GetProperty("DurationMs").GetDouble():F1} ms")));

    private static JsonDocument JwtPayload(string token)
    {
        var payload = token.Split('.')[1].Replace('-', '+').Replace('_', '/');
        return JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '='))));
    }
}
