using ScottPlot;
using SkiaSharp;

namespace MsiProxy.DashboardRender;

/// <summary>Draws every panel's series in the dashboard's grid (3 across), phases marked, into one PNG.</summary>
internal static class PanelRenderer
{
    private const int Columns = 3;
    private const int PanelWidth = 640;
    private const int PanelHeight = 380;
    private const int Header = 70;

    public static void Render(IReadOnlyList<PanelData> panels, LoadWindow window, string summary, string output)
    {
        var rows = (panels.Count + Columns - 1) / Columns;
        using var surface = SKSurface.Create(new SKImageInfo(Columns * PanelWidth, Header + rows * PanelHeight));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true })
        using (var title = new SKFont(SKTypeface.Default, 24))
        using (var note = new SKFont(SKTypeface.Default, 14))
        {
            canvas.DrawText("MsiProxy dashboard — docker/grafana/msiproxy-dashboard.json queries, evaluated by Prometheus over a real load run", 12, 30, title, paint);
            var phases = string.Join("   ", window.Phases.Select(p => $"{(p.At - window.Start).TotalSeconds:0}s: {p.Label}"));
            canvas.DrawText($"Rendered with ScottPlot, not a Grafana screenshot.  Phases (dashed lines) — {phases}.  {summary}", 12, 56, note, paint);
        }

        for (var i = 0; i < panels.Count; i++)
        {
            var left = (i % Columns) * PanelWidth;
            var top = Header + (i / Columns) * PanelHeight;
            // Each plot renders on its own surface: ScottPlot paints the whole canvas it is given.
            using var panel = SKSurface.Create(new SKImageInfo(PanelWidth, PanelHeight));
            Draw(panels[i], window).Render(panel);
            using var snapshot = panel.Snapshot();
            canvas.DrawImage(snapshot, left, top);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(output, png.ToArray());
    }

    private static Plot Draw(PanelData data, LoadWindow window)
    {
        var plot = new Plot();
        plot.Title(data.Panel.Title, size: 16);
        plot.Axes.Bottom.Label.Text = "seconds into the run";
        plot.Axes.Left.Label.Text = data.Panel.Unit switch
        {
            "reqps" => "requests / s",
            "percentunit" => "ratio",
            "s" => "seconds",
            _ => "",
        };
        foreach (var line in data.Lines)
        {
            var scatter = plot.Add.Scatter(line.Seconds, line.Values);
            scatter.LegendText = line.Label;
            scatter.MarkerSize = 0;
            scatter.LineWidth = 2;
        }

        foreach (var (at, _) in window.Phases.Skip(1))
        {
            var marker = plot.Add.VerticalLine((at - window.Start).TotalSeconds);
            marker.LinePattern = LinePattern.Dashed;
            marker.Color = Colors.Gray;
            marker.LineWidth = 1;
        }

        if (data.Lines.Count == 0)
        {
            plot.Add.Annotation("no data");
        }

        plot.ShowLegend(Alignment.UpperLeft);
        plot.Legend.FontSize = 11;
        plot.Axes.SetLimitsX(0, (window.End - window.Start).TotalSeconds);
        return plot;
    }
}
