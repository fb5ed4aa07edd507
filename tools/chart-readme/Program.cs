// dotnet run --project tools/chart-readme [-- <chart directory>] [--check]
// Regenerates the chart's README.md (default charts/msi-proxy); with --check only reports whether it is up to date.
using ChartReadme;

var check = args.Contains("--check");
var chart = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal)) ?? Path.Combine(RepositoryRoot(), "charts", "msi-proxy");
string generated;
try
{
    generated = ReadmeGenerator.Generate(chart);
}
catch (FormatException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

var readme = Path.Combine(chart, "README.md");
var current = File.Exists(readme) ? File.ReadAllText(readme) : "";
if (check)
{
    Console.WriteLine(current == generated ? $"{readme} is up to date" : $"{readme} is out of date: run dotnet run --project tools/chart-readme");
    return current == generated ? 0 : 1;
}

File.WriteAllText(readme, generated);
Console.WriteLine($"wrote {readme}");
return 0;

static string RepositoryRoot()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "MsiProxy.sln")))
        {
            return dir.FullName;
        }
    }

    throw new InvalidOperationException("run it inside the repository, or name the chart directory");
}
