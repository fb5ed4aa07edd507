using MsiProxy.Testing;

namespace MsiProxy.DashboardRender;

internal sealed record RenderOptions(string Prometheus, TimeSpan Duration, string Output)
{
    public static RenderOptions Parse(string[] args)
    {
        string? Value(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();
        var prometheus = Value("--prometheus") ?? "prometheus";
        var seconds = int.Parse(Value("--seconds") ?? "90", System.Globalization.CultureInfo.InvariantCulture);
        var output = Value("--out") ?? RepositoryPaths.Combine("docs", "images", "dashboard.png");
        return new RenderOptions(prometheus, TimeSpan.FromSeconds(seconds), Path.GetFullPath(output));
    }
}
