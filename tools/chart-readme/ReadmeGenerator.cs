using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ChartReadme;

/// <summary>
/// A chart's README.md, the way helm-docs writes one (helm-docs is a Go binary no registry we use ships): the
/// chart's README.md.gotmpl with helm-docs' named templates filled in from Chart.yaml and from values.yaml's comments.
/// A value is documented by a <c># -- description</c> comment right above its key (following comment lines continue
/// it); a documented map or list is one row, an undocumented map is described key by key, and an undocumented leaf
/// is an error, so every value has a description. Rows keep values.yaml's order.
/// </summary>
internal static partial class ReadmeGenerator
{
    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Generate(string chartDirectory)
    {
        var chart = (YamlMappingNode)Load(File.ReadAllText(Path.Combine(chartDirectory, "Chart.yaml")));
        var values = ValueRows(File.ReadAllText(Path.Combine(chartDirectory, "values.yaml")));
        var template = File.ReadAllText(Path.Combine(chartDirectory, "README.md.gotmpl"));
        var sections = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["chart.header"] = $"# {Text(chart, "name")}",
            ["chart.description"] = Text(chart, "description") ?? "",
            ["chart.version"] = Text(chart, "version") ?? "",
            ["chart.appVersion"] = Text(chart, "appVersion") ?? "",
            ["chart.type"] = Text(chart, "type") ?? "application",
            ["chart.kubeVersion"] = Text(chart, "kubeVersion") ?? "",
            ["chart.homepageLine"] = Text(chart, "home") is { } home ? $"**Homepage:** <{home}>" : "",
            ["chart.sourcesSection"] = Items(chart, "sources") is [_, ..] sources
                ? "## Source Code\n\n" + string.Concat(sources.Select(s => $"* <{((YamlScalarNode)s).Value}>\n"))
                : "",
            ["chart.maintainersSection"] = Items(chart, "maintainers") is [_, ..] maintainers
                ? "## Maintainers\n\n| Name | Email | Url |\n| ---- | ------ | --- |\n"
                    + string.Concat(maintainers.Cast<YamlMappingNode>().Select(m => $"| {Cell(Text(m, "name"))} | {Cell(Text(m, "email"))} | {Cell(Text(m, "url"))} |\n"))
                : "",
            ["chart.requirementsSection"] = Text(chart, "kubeVersion") is { } kube ? $"## Requirements\n\nKubernetes: `{kube}`\n" : "",
            ["chart.valuesTable"] = Table(values),
            ["chart.valuesSection"] = "## Values\n\n" + Table(values),
        };

        var readme = Placeholder().Replace(template, m => sections.TryGetValue(m.Groups["name"].Value, out var section)
            ? section
            : throw new FormatException($"README.md.gotmpl: unknown template \"{m.Groups["name"].Value}\" (known: {string.Join(", ", sections.Keys)})"));
        if (readme.Contains("{{", StringComparison.Ordinal))
        {
            throw new FormatException("README.md.gotmpl: only {{ template \"chart.…\" . }} placeholders are supported");
        }

        // A section that is empty for this chart (no homepage, say) leaves no run of blank lines behind.
        return BlankLines().Replace(readme, "\n\n");
    }

    /// <summary>One row per documented value: key path, type, default as JSON, description.</summary>
    public static IReadOnlyList<ValueRow> ValueRows(string valuesYaml)
    {
        var lines = valuesYaml.Split('\n');
        var rows = new List<ValueRow>();
        void Walk(YamlMappingNode map, string prefix)
        {
            foreach (var (keyNode, value) in map.Children)
            {
                var key = prefix + ((YamlScalarNode)keyNode).Value;
                var description = Description(lines, (int)keyNode.Start.Line);
                if (description is not null)
                {
                    rows.Add(new ValueRow(key, TypeOf(value), JsonSerializer.Serialize(ToJson(value), Compact), description));
                }
                else if (value is YamlMappingNode { Children.Count: > 0 } child)
                {
                    Walk(child, key + ".");
                }
                else
                {
                    throw new FormatException($"values.yaml line {keyNode.Start.Line}: {key} has no \"# --\" description");
                }
            }
        }

        Walk((YamlMappingNode)Load(valuesYaml), "");
        return rows;
    }

    // The comment block right above a key (no blank line between); the description starts at its "# --" line.
    private static string? Description(string[] lines, int keyLine)
    {
        var block = new List<string>();
        for (var i = keyLine - 2; i >= 0 && lines[i].TrimStart().StartsWith('#'); i--)
        {
            block.Insert(0, lines[i].Trim());
        }

        var start = block.FindIndex(l => l.StartsWith("# --", StringComparison.Ordinal));
        if (start < 0)
        {
            return null;
        }

        return string.Join(' ', block.Skip(start).Select((l, n) => (n == 0 ? l["# --".Length..] : l.TrimStart('#')).Trim()).Where(l => l.Length > 0));
    }

    private static string Table(IReadOnlyList<ValueRow> rows) =>
        "| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n"
        + string.Concat(rows.Select(r => $"| {Cell(r.Key)} | {r.Type} | {Cell("`" + r.Default + "`")} | {Cell(r.Description)} |\n"));

    // A pipe ends a table cell even inside a code span (GitHub-flavoured Markdown): escape it.
    private static string Cell(string? text) => (text ?? "").Replace("|", "\\|", StringComparison.Ordinal);

    private static string TypeOf(YamlNode node) => node switch
    {
        YamlMappingNode => "object",
        YamlSequenceNode => "list",
        YamlScalarNode scalar => Scalar(scalar) switch
        {
            bool => "bool",
            long => "int",
            double => "float",
            _ => "string",
        },
        _ => throw new FormatException($"unsupported YAML node {node.NodeType}"),
    };

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(p => KeyValuePair.Create(((YamlScalarNode)p.Key).Value!, ToJson(p.Value)))),
        YamlSequenceNode list => new JsonArray([.. list.Children.Select(ToJson)]),
        YamlScalarNode scalar => Scalar(scalar) switch
        {
            null => null,
            bool b => JsonValue.Create(b),
            long l => JsonValue.Create(l),
            double d => JsonValue.Create(d),
            var s => JsonValue.Create((string)s),
        },
        _ => throw new FormatException($"unsupported YAML node {node.NodeType}"),
    };

    // YAML 1.2 core schema, as helm reads values.yaml: only plain scalars are booleans, numbers or null.
    private static object? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return text;
        }

        return text switch
        {
            "" or "~" or "null" or "Null" or "NULL" => null,
            "true" or "True" or "TRUE" => true,
            "false" or "False" or "FALSE" => false,
            _ when IntPattern().IsMatch(text) => long.Parse(text, CultureInfo.InvariantCulture),
            _ when FloatPattern().IsMatch(text) => double.Parse(text, CultureInfo.InvariantCulture),
            _ => text,
        };
    }

    private static YamlNode Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents[0].RootNode;
    }

    private static string? Text(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlScalarNode scalar ? scalar.Value : null;

    private static IReadOnlyList<YamlNode> Items(YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) && value is YamlSequenceNode list ? [.. list.Children] : [];

    [GeneratedRegex(@"\{\{-?\s*template\s+""(?<name>[A-Za-z.]+)""\s+\.\s*-?\}\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex BlankLines();

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();
}

/// <summary>One line of the values table.</summary>
internal sealed record ValueRow(string Key, string Type, string Default, string Description);
