namespace MsiProxy.Benchmarks.Load;

internal static class Percentiles
{
    /// <summary>Nearest-rank percentile of sorted values, rounded to 0.01; null when there are none.</summary>
    public static double? NearestRank(double[] sorted, int percent) => sorted.Length == 0
        ? null
        : Math.Round(sorted[Math.Max(0, (int)Math.Ceiling(percent / 100.0 * sorted.Length) - 1)], 2);
}
