using System.Text.Json;

namespace MsiProxy.DashboardRender;

/// <summary>The panels of the Grafana dashboard JSON: title, unit and the PromQL of each target.</summary>
internal sealed record Dashboard(IReadOnlyList<Panel> Panels)
{
    public static Dashboard Load(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var panels = document.RootElement.GetProperty("panels").EnumerateArray().Select(p => new Panel(
            p.GetProperty("title").GetString()!,
            p.GetProperty("fieldConfig").GetProperty("defaults").TryGetProperty("unit", out var unit) ? unit.GetString()! : "short",
            p.GetProperty("targets").EnumerateArray().Select(t => new Target(t.GetProperty("expr").GetString()!,
                t.TryGetProperty("legendFormat", out var legend) ? legend.GetString()! : "")).ToList())).ToList();
        return new Dashboard(panels);
    }
}

internal sealed record Panel(string Title, string Unit, IReadOnlyList<Target> Targets);

internal sealed record Target(string Expr, string LegendFormat)
{
    /// <summary>The query as Grafana would send it with "All" selected and a 1 s scrape interval.</summary>
    public string Resolved => Expr.Replace("$__rate_interval", "10s", StringComparison.Ordinal)
        .Replace("$job", ".*", StringComparison.Ordinal).Replace("$instance", ".*", StringComparison.Ordinal);
}

internal sealed record LoadWindow(DateTimeOffset Start, DateTimeOffset End, IReadOnlyList<(DateTimeOffset At, string Label)> Phases);

internal sealed record Line(string Label, double[] Seconds, double[] Values);

internal sealed record PanelData(Panel Panel, IReadOnlyList<Line> Lines);
