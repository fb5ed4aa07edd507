using System.Text.Json.Nodes;

namespace MsiProxy.Benchmarks.Report;

/// <summary>The raw lines, queried by scenario, system, round and (for memory) phase.</summary>
internal sealed class Measurements(IReadOnlyList<JsonObject> lines)
{
    public IEnumerable<JsonObject> Select(string scenario, string system, string? phase = null) => lines.Where(l =>
        (string?)l["scenario"] == scenario && (string?)l["system"] == system && (phase is null || (string?)l["phase"] == phase));

    private IEnumerable<double> Values(string scenario, string system, string field, string? phase = null) =>
        Select(scenario, system, phase).Select(l => ResultsReport.Value(l[field])).OfType<double>();

    public int Rounds(string scenario) => lines.Where(l => (string?)l["scenario"] == scenario).Select(l => (int?)l["round"]).Distinct().Count();

    public JsonNode? Median(string scenario, string system, string field, string? phase = null) => MedianOf(Values(scenario, system, field, phase));

    public JsonNode? Max(string scenario, string system, string field) =>
        Values(scenario, system, field).DefaultIfEmpty(double.NaN).Max() is var max && !double.IsNaN(max) ? max : null;

    public JsonNode? Sum(string scenario, string system, string field, string? phase = null) => Values(scenario, system, field, phase).Sum();

    /// <summary>Median over rounds of a/b, where a and b were measured back to back in the same round.</summary>
    public JsonNode? RoundRatio(string scenario, string a, string b, string field, string? phase = null) =>
        MedianOfRounds(scenario, round => round(a, field) / round(b, field), phase);

    public JsonNode? MedianOfRounds(string scenario, Func<Func<string, string, double>, double> perRound, string? phase = null)
    {
        var values = new List<double>();
        foreach (var round in lines.Where(l => (string?)l["scenario"] == scenario).Select(l => (int)l["round"]!).Distinct())
        {
            double Get(string system, string field) => Select(scenario, system, phase)
                .Where(l => (int)l["round"]! == round).Select(l => ResultsReport.Value(l[field])).FirstOrDefault() ?? double.NaN;
            var value = perRound(Get);
            if (double.IsFinite(value))
            {
                values.Add(value);
            }
        }

        return MedianOf(values) is { } median ? Math.Round(median.GetValue<double>(), 3) : null;
    }

    private static JsonNode? MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return null;
        }

        var middle = sorted.Length / 2;
        var median = sorted.Length % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
        return Math.Round(median, 3);
    }
}
