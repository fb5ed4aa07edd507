// Renders docs/images/dashboard.png: the Grafana dashboard's PromQL, evaluated by a real Prometheus over a real load run.
//   dotnet run --project tools/dashboard-render -- --prometheus /path/to/prometheus [--seconds 90] [--out docs/images/dashboard.png]
// Prometheus: `apt-get download prometheus && dpkg-deb -x prometheus_*.deb root` gives root/usr/bin/prometheus (see docs/observability.md).
using MsiProxy.DashboardRender;
using MsiProxy.Testing;

var options = RenderOptions.Parse(args);
var dashboard = Dashboard.Load(RepositoryPaths.Combine("docker", "grafana", "msiproxy-dashboard.json"));

await using var run = await LoadRun.StartAsync();                                   // emulator + proxy on loopback
await using var prometheus = await PrometheusServer.StartAsync(options.Prometheus, run.MetricsAddress);
var window = await run.DriveAsync(options.Duration);                                // phases: normal, upstream faults, throttling
await PrometheusServer.WaitForScrapeAfterAsync(window.End);

var series = new List<PanelData>();
foreach (var panel in dashboard.Panels)
{
    series.Add(await prometheus.QueryPanelAsync(panel, window));
}

PanelRenderer.Render(series, window, run.Summary, options.Output);
Console.WriteLine($"{run.Summary}\nWrote {options.Output}");
