using ChartReadme;

namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>charts/msi-proxy/README.md is what tools/chart-readme writes from Chart.yaml and values.yaml's comments.</summary>
public class ChartReadmeTests
{
    private static readonly string ChartDirectory = HelmChart.MsiProxy.Directory;

    [Fact]
    public void The_chart_readme_is_up_to_date_with_values_yaml()
    {
        var expected = ReadmeGenerator.Generate(ChartDirectory);
        var actual = File.ReadAllText(Path.Combine(ChartDirectory, "README.md"));
        Assert.True(expected == actual, "charts/msi-proxy/README.md is out of date: run `dotnet run --project tools/chart-readme`");
    }

    [Fact]
    public void Every_value_of_values_yaml_has_a_row_with_its_type_default_and_description()
    {
        var rows = ReadmeGenerator.ValueRows(File.ReadAllText(Path.Combine(ChartDirectory, "values.yaml"))).ToDictionary(r => r.Key);
        Assert.Equal(new ValueRow("ports.client", "int", "8080",
            "Client-facing port: what `169.254.169.254:80` is DNAT-ed to, or what `AZURE_POD_IDENTITY_AUTHORITY_HOST` names. "
            + "Above 1024, so the container needs no privilege to bind it. On the node's network, pick a port no node service uses."), rows["ports.client"]);
        Assert.Equal(("list", "[\"http://169.254.169.254\"]"), (rows["upstreams"].Type, rows["upstreams"].Default));
        Assert.Equal(("bool", "false"), (rows["kubernetes.dnat.enabled"].Type, rows["kubernetes.dnat.enabled"].Default));
        Assert.Equal(("string", "\"00:00:30\""), (rows["kubernetes.dnat.reconcileInterval"].Type, rows["kubernetes.dnat.reconcileInterval"].Default));
        Assert.Equal(("object", "{}"), (rows["config"].Type, rows["config"].Default));
        // A documented map is one row: its keys are not listed again.
        Assert.Equal("{\"requests\":{\"cpu\":\"20m\",\"memory\":\"64Mi\"},\"limits\":{\"memory\":\"256Mi\"}}", rows["resources"].Default);
        Assert.DoesNotContain(rows.Keys, k => k.StartsWith("resources.", StringComparison.Ordinal));
        Assert.All(rows.Values, r => Assert.False(string.IsNullOrWhiteSpace(r.Description), r.Key));
    }

    [Fact]
    public void An_undocumented_value_is_an_error_naming_it()
    {
        var error = Assert.Throws<FormatException>(() => ReadmeGenerator.ValueRows("""
            # -- Documented.
            a: 1
            b:
              # A plain comment is not a description.
              c: true
            """));
        Assert.Contains("b.c has no \"# --\" description", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Descriptions_continue_over_comment_lines_and_pipes_are_escaped_in_the_table()
    {
        const string values = """
            # Section heading, not part of the description.
            # -- First line,
            # second line | with a pipe.
            key: "a|b"

            # e.g. a trailing example that belongs to no key
            other:
              # -- Nested.
              leaf: 2.5
            """;
        Assert.Equal([new ValueRow("key", "string", "\"a|b\"", "First line, second line | with a pipe."), new ValueRow("other.leaf", "float", "2.5", "Nested.")],
            ReadmeGenerator.ValueRows(values));

        using var chart = new Support.TemporaryDirectory("chart-readme-");
        File.WriteAllText(Path.Combine(chart.Path, "Chart.yaml"), "name: demo\nversion: 1.0.0\n");
        File.WriteAllText(Path.Combine(chart.Path, "values.yaml"), values);
        File.WriteAllText(Path.Combine(chart.Path, "README.md.gotmpl"), "{{ template \"chart.header\" . }}\n\n{{ template \"chart.homepageLine\" . }}\n\n{{ template \"chart.valuesTable\" . }}");
        Assert.Equal("""
            # demo

            | Key | Type | Default | Description |
            |-----|------|---------|-------------|
            | key | string | `"a\|b"` | First line, second line \| with a pipe. |
            | other.leaf | float | `2.5` | Nested. |

            """.Replace("\r", "", StringComparison.Ordinal), ReadmeGenerator.Generate(chart.Path));

        File.WriteAllText(Path.Combine(chart.Path, "README.md.gotmpl"), "{{ template \"chart.badgesSection\" . }}");
        Assert.Contains("unknown template \"chart.badgesSection\"", Assert.Throws<FormatException>(() => ReadmeGenerator.Generate(chart.Path)).Message, StringComparison.Ordinal);
    }
}
