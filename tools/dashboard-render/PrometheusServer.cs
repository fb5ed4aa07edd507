using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using MsiProxy.Testing.Net;

namespace MsiProxy.DashboardRender;

/// <summary>A real Prometheus on 127.0.0.1 scraping the proxy's /metrics every second, queried over its HTTP API.</summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly DirectoryInfo _scratch;
    private readonly HttpClient _api;

    private PrometheusServer(Process process, DirectoryInfo scratch, HttpClient api)
    {
        _process = process;
        _scratch = scratch;
        _api = api;
    }

    public static async Task<PrometheusServer> StartAsync(string binary, Uri target)
    {
        if (!IPAddress.IsLoopback(IPAddress.Parse(target.Host)))
        {
            throw new InvalidOperationException($"Refusing to scrape {target}: loopback only.");
        }

        var scratch = Directory.CreateTempSubdirectory("msiproxy-prometheus-");
        var config = Path.Combine(scratch.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global: {"{"}scrape_interval: 1s, evaluation_interval: 1s{"}"}
            scrape_configs:
              - job_name: msiproxy
                static_configs: [{"{"}targets: ["{target.Authority}"]{"}"}]
            """);
        var port = FreePort();
        var start = new ProcessStartInfo(binary)
        {
            ArgumentList = { $"--config.file={config}", $"--web.listen-address=127.0.0.1:{port}", $"--storage.tsdb.path={Path.Combine(scratch.FullName, "data")}" },
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        var process = Process.Start(start) ?? throw new InvalidOperationException("Prometheus did not start");
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        var api = LoopbackCaller.Create("127.0.0.1", new Uri($"http://127.0.0.1:{port}"), TimeSpan.FromSeconds(10));
        var server = new PrometheusServer(process, scratch, api);
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var ready = await api.GetAsync("/-/ready");
                if (ready.IsSuccessStatusCode)
                {
                    return server;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }

            await Task.Delay(100);
        }

        await server.DisposeAsync();
        throw new InvalidOperationException("Prometheus did not become ready");
    }

    public static Task WaitForScrapeAfterAsync(DateTimeOffset end) =>
        Task.Delay(end + TimeSpan.FromSeconds(3) - DateTimeOffset.UtcNow is { TotalMilliseconds: > 0 } wait ? wait : TimeSpan.Zero);

    public async Task<PanelData> QueryPanelAsync(Panel panel, LoadWindow window)
    {
        var lines = new List<Line>();
        foreach (var target in panel.Targets)
        {
            var query = $"/api/v1/query_range?query={Uri.EscapeDataString(target.Resolved)}&start={window.Start.ToUnixTimeSeconds()}&end={window.End.ToUnixTimeSeconds()}&step=2";
            using var document = JsonDocument.Parse(await _api.GetStringAsync(query));
            foreach (var result in document.RootElement.GetProperty("data").GetProperty("result").EnumerateArray())
            {
                var labels = result.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
                var points = result.GetProperty("values").EnumerateArray()
                    .Select(v => (T: v[0].GetDouble() - window.Start.ToUnixTimeSeconds(), V: double.Parse(v[1].GetString()!, CultureInfo.InvariantCulture)))
                    .Where(p => double.IsFinite(p.V)).ToList();
                if (points.Count > 0)
                {
                    lines.Add(new Line(Legend(target.LegendFormat, labels), [.. points.Select(p => p.T)], [.. points.Select(p => p.V)]));
                }
            }
        }

        return new PanelData(panel, lines);
    }

    private static string Legend(string format, IReadOnlyDictionary<string, string> labels)
    {
        var legend = format;
        foreach (var (name, value) in labels)
        {
            legend = legend.Replace("{{" + name + "}}", value, StringComparison.Ordinal);
        }

        return legend;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }

        _process.Dispose();
        _api.Dispose();
        _scratch.Delete(recursive: true);
        return ValueTask.CompletedTask;
    }
}
