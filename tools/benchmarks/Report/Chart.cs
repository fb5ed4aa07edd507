using System.Text.Json.Nodes;
using ScottPlot;

namespace MsiProxy.Benchmarks.Report;

/// <summary>Three panels: cached-hit throughput, added miss latency, RSS under load — the figures the goals are about.</summary>
internal static class Chart
{
    public static void Write(JsonObject summary, string path)
    {
        var hits = summary["hits"]!;
        var miss = summary["miss"]!;
        var memory = summary["memory"]!;
        var multiplot = new Multiplot();
        foreach (var empty in multiplot.GetPlots())
        {
            multiplot.RemovePlot(empty); // a new Multiplot starts with one empty plot
        }

        multiplot.AddPlot(Bars("Cached hits: req/s (median)", "requests/s",
            [("MsiProxy", hits["msiproxy"]?["rps"]), ("nginx", hits["nginx"]?["rps"]), ("bare Kestrel", hits["kestrel"]?["rps"])]));
        multiplot.AddPlot(Bars("Cache miss: added p50 latency", "ms over the emulator",
            [("MsiProxy", miss["msiproxy_added_p50_ms"]), ("nginx", miss["nginx_added_p50_ms"]), ("bare forwarder", miss["forwarder_added_p50_ms"])]));
        multiplot.AddPlot(Bars("RSS under cached-hit load", "MB",
            [("MsiProxy", memory["msiproxy"]?["load"]), ("bare Kestrel", memory["kestrel"]?["load"]), ("nginx", memory["nginx"]?["load"])]));
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        multiplot.SavePng(path, 1500, 500);
    }

    private static Plot Bars(string title, string unit, (string Label, JsonNode? Value)[] entries)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        var labels = new string[entries.Length];
        for (var i = 0; i < entries.Length; i++)
        {
            var value = ResultsReport.Value(entries[i].Value) ?? 0;
            bars.Add(new Bar { Position = i, Value = value, FillColor = palette.GetColor(i), Label = ResultsReport.Num(entries[i].Value, value >= 100 ? 0 : 2) });
            labels[i] = entries[i].Label;
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 16;
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(0, entries.Length).Select(i => (double)i)], labels);
        plot.Axes.Bottom.TickLabelStyle.FontSize = 16;
        plot.Axes.Margins(bottom: 0, top: 0.2);
        plot.Title(title);
        plot.YLabel(unit);
        return plot;
    }
}
