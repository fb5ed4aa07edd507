using System.Text.Json.Nodes;
using ScottPlot;

namespace MsiProxy.Benchmarks.Report;

/// <summary>
/// Scenario 7's figure (victim.png): left, every quiet request of round 1 under the flood against when it was sent
/// (refusals as crosses); right, the share of the quiet client's requests that had a token within x ms, all rounds —
/// a failed request never gets one, so a curve ends at the share that succeeded.
/// </summary>
internal static class VictimChart
{
    public static readonly string[] Phases = ["no_flood", "flood"];

    private static readonly (string System, string Label)[] Systems = [("msiproxy", "MsiProxy"), ("nginx", "nginx")];

    internal sealed record Sample(int Round, double StartMs, double LatencyMs, int Status);

    /// <summary>The quiet client's samples ([start ms, latency ms, status] in the raw line) of every round.</summary>
    public static IEnumerable<Sample> Samples(Measurements data, string system, string phase) =>
        data.Select("victim", system, phase).SelectMany(line => line["samples"]!.AsArray().Select(s => new Sample(
            (int)line["round"]!, (double)s![0]!, (double)s[1]!, (int)s[2]!)));

    public static void Write(Measurements data, string path)
    {
        var multiplot = new Multiplot();
        foreach (var empty in multiplot.GetPlots())
        {
            multiplot.RemovePlot(empty);
        }

        multiplot.AddPlot(TimeSeries(data));
        multiplot.AddPlot(TimeToToken(data));
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        multiplot.SavePng(path, 1500, 550);
    }

    private static Plot TimeSeries(Measurements data)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (var i = 0; i < Systems.Length; i++)
        {
            var samples = Samples(data, Systems[i].System, "flood").Where(s => s.Round == 1).ToList();
            foreach (var (served, shape, suffix) in new[] { (true, MarkerShape.FilledCircle, "token"), (false, MarkerShape.Cross, "refused (429/5xx)") })
            {
                var points = samples.Where(s => (s.Status == 200) == served).ToArray();
                if (points.Length == 0)
                {
                    continue;
                }

                var scatter = plot.Add.ScatterPoints(points.Select(s => s.StartMs / 1000).ToArray(), points.Select(s => s.LatencyMs).ToArray(), palette.GetColor(i));
                scatter.MarkerShape = shape;
                scatter.MarkerSize = served ? 7 : 10;
                scatter.LegendText = $"{Systems[i].Label}: {suffix}";
            }
        }

        plot.Title("Quiet client while the neighbour floods (round 1)");
        plot.XLabel("s since the quiet client's first request");
        plot.YLabel("latency ms");
        plot.ShowLegend(Alignment.UpperRight);
        return plot;
    }

    private static Plot TimeToToken(Measurements data)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var longest = Systems.SelectMany(s => Phases.SelectMany(p => Samples(data, s.System, p))).Select(s => s.LatencyMs).DefaultIfEmpty(0).Max();
        for (var i = 0; i < Systems.Length; i++)
        {
            foreach (var phase in Phases)
            {
                var samples = Samples(data, Systems[i].System, phase).ToList();
                if (samples.Count == 0)
                {
                    continue;
                }

                // From 0 ms, one step per token served, then flat to the right edge: the plateau is the share served.
                var served = samples.Where(s => s.Status == 200).Select(s => s.LatencyMs).Order().ToArray();
                var xs = served.Prepend(0).Append(longest).ToArray();
                var ys = Enumerable.Range(0, served.Length + 1).Select(k => 100.0 * k / samples.Count).Append(100.0 * served.Length / samples.Count).ToArray();
                var line = plot.Add.ScatterLine(xs, ys, palette.GetColor(i));
                line.ConnectStyle = ConnectStyle.StepHorizontal;
                line.LineWidth = 2;
                line.LinePattern = phase == "flood" ? LinePattern.Solid : LinePattern.Dashed;
                line.LegendText = $"{Systems[i].Label}, {(phase == "flood" ? "neighbour flooding" : "alone")}";
            }
        }

        plot.Title("Quiet client: share of requests with a token within x ms (all rounds)");
        plot.XLabel("ms");
        plot.YLabel("% of the quiet client's requests");
        plot.Axes.SetLimitsY(0, 105);
        plot.ShowLegend(Alignment.LowerRight);
        return plot;
    }
}
