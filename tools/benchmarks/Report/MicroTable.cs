using System.Text.Json.Nodes;

namespace MsiProxy.Benchmarks.Report;

/// <summary>Reads BenchmarkDotNet's brief JSON exports (one file per benchmark class) into name / mean / allocated rows.</summary>
internal static class MicroTable
{
    public static JsonArray Read(string directory)
    {
        var rows = new JsonArray();
        if (string.IsNullOrEmpty(directory) || !Directory.Exists(directory))
        {
            return rows;
        }

        foreach (var file in Directory.GetFiles(directory, "*-report-brief.json").Order(StringComparer.Ordinal))
        {
            var report = JsonNode.Parse(File.ReadAllText(file))!;
            foreach (var benchmark in report["Benchmarks"]!.AsArray())
            {
                rows.Add(new JsonObject
                {
                    ["name"] = $"{benchmark!["Type"]}.{benchmark["Method"]}",
                    ["mean_ns"] = benchmark["Statistics"]?["Mean"]?.DeepClone(),
                    ["allocated_bytes"] = benchmark["Memory"]?["BytesAllocatedPerOperation"]?.DeepClone(),
                });
            }
        }

        return rows;
    }
}
