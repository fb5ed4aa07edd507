using System.Diagnostics;
using System.Net;
using MsiProxy.ImdsEmulator;
using MsiProxy.Telemetry;
using MsiProxy.Testing.Net;
using MsiProxy.Testing.Processes;
using MsiProxy.Testing.Proxy;
using MsiProxy.Testing.VmNetwork;
using Xunit.Abstractions;

namespace MsiProxy.Tests.Telemetry;

/// <summary>
/// OTLP export to a real receiver on loopback: the Aspire Dashboard (from NuGet), whose query API returns what it
/// received. The proxy is configured only through the standard OTEL_* variables.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class OtlpExportTests(ITestOutputHelper output)
{
    private const string DashboardPackage = "aspire.dashboard.sdk.linux-x64";
    private const string DashboardVersion = "13.6.5";

    [SkippableTheory]
    [InlineData("http/protobuf")]
    [InlineData("grpc")]
    public async Task Spans_of_a_token_request_arrive_at_an_otlp_receiver(string protocol)
    {
        var dashboard = FindOrRestoreDashboard();
        Skip.If(dashboard is null, $"{DashboardPackage} {DashboardVersion} could not be restored from NuGet, so there is no OTLP receiver to test against.");

        var uiPort = LoopbackCaller.FreePort();
        var grpcPort = LoopbackCaller.FreePort();
        var httpPort = LoopbackCaller.FreePort();
        await using var receiver = ChildProcess.Start(dashboard, [], workingDirectory: Path.GetDirectoryName(dashboard), environment: new Dictionary<string, string?>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{uiPort}",
            ["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = $"http://127.0.0.1:{grpcPort}",
            ["ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL"] = $"http://127.0.0.1:{httpPort}",
            ["ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS"] = "true",
            ["Dashboard__Api__Enabled"] = "true",
            ["Dashboard__Api__AuthMode"] = "Unsecured",
            ["DOTNET_DASHBOARD_OTLP_ENDPOINT_URL"] = null,
        });
        using var api = LoopbackCaller.Create("127.0.0.1", new Uri($"http://127.0.0.1:{uiPort}"), TimeSpan.FromSeconds(5));
        await Eventually(() => !receiver.HasExited && Get(api, "/api/telemetry/resources") is not null, what: "the Aspire Dashboard answers");

        await using var emulator = await ImdsEmulatorServer.StartAsync();
        var service = "msiproxy-otlp-" + protocol.Replace('/', '-');
        var settings = ProxyHost.Settings(emulator.BaseAddress, ("app", "127.0.0.2", []));
        settings["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{(protocol == "grpc" ? grpcPort : httpPort)}";
        settings["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol;
        settings["OTEL_SERVICE_NAME"] = service;
        settings["OTEL_BSP_SCHEDULE_DELAY"] = "200";
        var capture = new TelemetryCapture();
        Activity server;
        await using (var proxy = await ProxyHost.StartAsync(settings, capture.Configure))
        {
            using var app = proxy.CreateClient("127.0.0.2");
            using var response = await app.SendAsync(Scenario.Token());
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            server = await capture.ServerSpanAsync("app", "miss");
        }

        // Disposing the proxy flushed its exporters; the receiver now has the whole trace.
        var traceId = server.TraceId.ToHexString();
        var spans = "";
        await Eventually(() => (spans = Get(api, "/api/telemetry/spans") ?? "").Contains(traceId, StringComparison.Ordinal)
            && spans.Contains(TraceSpans.UpstreamAttempt, StringComparison.Ordinal), what: "the trace arrives at the receiver");
        output.WriteLine(spans[..Math.Min(spans.Length, 2000)]);
        Assert.Contains(service, spans, StringComparison.Ordinal);
        Assert.Contains(TraceSpans.UpstreamCall, spans, StringComparison.Ordinal);
        Assert.Contains(server.SpanId.ToHexString(), spans, StringComparison.Ordinal);
        Assert.Contains("msiproxy.outcome", spans, StringComparison.Ordinal);
        var resources = Get(api, "/api/telemetry/resources") ?? "";
        output.WriteLine(resources);
        Assert.Contains(service, resources, StringComparison.Ordinal);
    }

    private static string? Get(HttpClient client, string path)
    {
        try
        {
            using var response = client.GetAsync(path).GetAwaiter().GetResult();
            return response.IsSuccessStatusCode ? response.Content.ReadAsStringAsync().GetAwaiter().GetResult() : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    /// <summary>The dashboard binary from the NuGet global packages folder, restored there first if it is missing.</summary>
    private static string? FindOrRestoreDashboard()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var binary = Path.Combine(packages, DashboardPackage, DashboardVersion, "tools", "Aspire.Dashboard");
        if (!File.Exists(binary))
        {
            var scratch = Directory.CreateTempSubdirectory("msiproxy-aspire-");
            try
            {
                File.WriteAllText(Path.Combine(scratch.FullName, "download.csproj"), $"""
                    <Project Sdk="Microsoft.NET.Sdk">
                      <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
                      <ItemGroup><PackageDownload Include="Aspire.Dashboard.Sdk.linux-x64" Version="[{DashboardVersion}]" /></ItemGroup>
                    </Project>
                    """);
                RigCommand.Run("dotnet", ["restore", Path.Combine(scratch.FullName, "download.csproj")], TimeSpan.FromMinutes(3));
            }
            finally
            {
                scratch.Delete(recursive: true);
            }
        }

        return File.Exists(binary) ? binary : null;
    }
}
