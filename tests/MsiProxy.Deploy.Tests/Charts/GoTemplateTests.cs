namespace MsiProxy.Deploy.Tests.Charts;

/// <summary>The renderer must agree with Go text/template on the constructs the chart relies on.</summary>
public class GoTemplateTests
{
    private static string Render(string template, object? data)
    {
        var engine = new GoTemplate();
        return engine.Render(engine.Parse(template, "t"), data);
    }

    private static Dictionary<string, object?> Map(params (string Key, object? Value)[] pairs) =>
        pairs.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);

    [Fact]
    public void Trim_markers_remove_whitespace_on_their_side_only()
    {
        Assert.Equal("a:bc", Render("a: \n  {{- \"b\" -}}  \n  \nc", null));
        Assert.Equal("x\n  y", Render("x\n  {{ \"y\" }}", null));
        Assert.Equal("xy", Render("x {{- /* comment */ -}} y", null));
    }

    [Fact]
    public void If_else_if_else_picks_the_first_true_branch()
    {
        const string t = "{{ if eq .os \"linux\" }}L{{ else if eq .os \"windows\" }}W{{ else }}?{{ end }}";
        Assert.Equal("L", Render(t, Map(("os", "linux"))));
        Assert.Equal("W", Render(t, Map(("os", "windows"))));
        Assert.Equal("?", Render(t, Map(("os", "mac"))));
    }

    [Fact]
    public void Range_gives_index_and_value_and_runs_else_when_empty()
    {
        const string t = "{{ range $i, $v := .items }}[{{ $i }}={{ $v }}]{{ else }}none{{ end }}";
        Assert.Equal("[0=a][1=b]", Render(t, Map(("items", new List<object?> { "a", "b" }))));
        Assert.Equal("none", Render(t, Map(("items", new List<object?>()))));
    }

    [Fact]
    public void Go_truthiness_treats_empty_and_zero_as_false()
    {
        const string t = "{{ if .v }}T{{ else }}F{{ end }}";
        Assert.Equal("F", Render(t, Map(("v", ""))));
        Assert.Equal("F", Render(t, Map(("v", 0L))));
        Assert.Equal("F", Render(t, Map(("v", new Dictionary<string, object?>()))));
        Assert.Equal("T", Render(t, Map(("v", "x"))));
        Assert.Equal("F", Render(t, Map()));
    }

    [Fact]
    public void With_rebinds_dot_and_define_include_pipe_into_nindent()
    {
        const string t = "{{- define \"n\" -}}name: {{ .x }}{{- end -}}root:{{ include \"n\" .m | nindent 2 }}{{ with .m }} {{ .x }}{{ end }}";
        Assert.Equal("root:\n  name: 1 1", Render(t, Map(("m", Map(("x", 1L))))));
    }

    [Fact]
    public void Functions_match_sprig()
    {
        Assert.Equal("\"a\\\\b \\\"c\\\"\"", Render("{{ .v | quote }}", Map(("v", "a\\b \"c\""))));
        Assert.Equal("rel-msi", Render("{{ printf \"%s-%s\" .a .b | trunc 63 | trimSuffix \"-\" }}", Map(("a", "rel"), ("b", "msi"))));
        Assert.Equal("dflt", Render("{{ default \"dflt\" .v }}", Map(("v", ""))));
        Assert.Equal("a: 1\nb:\n- x", Render("{{ toYaml .v }}", Map(("v", Map(("b", new List<object?> { "x" }), ("a", 1L))))));
        Assert.Equal("{\"a\":[\"x\"]}", Render("{{ toJson .v }}", Map(("v", Map(("a", new List<object?> { "x" }))))));
        Assert.Equal("a2V5", Render("{{ b64enc \"key\" }}", null));
        Assert.Equal("true", Render("{{ and true (not false) }}", null));
        Assert.Equal("list:\n- x\nn: 1", Render("{{ dict \"n\" 1 \"list\" .v | toYaml }}", Map(("v", new List<object?> { "x" }))));
        Assert.Equal("list: []", Render("{{ dict \"list\" .v | toYaml }}", Map(("v", new List<object?>()))));
    }

    [Fact]
    public void Unsupported_constructs_and_nil_fields_fail_loudly()
    {
        Assert.Throws<TemplateException>(() => Render("{{ lookup \"v1\" \"Pod\" \"\" \"\" }}", null));
        Assert.Throws<TemplateException>(() => Render("{{ if .a }}x", Map(("a", true))));
        Assert.Throws<TemplateException>(() => Render("{{ .a.b.c }}", Map()));
        Assert.Throws<TemplateException>(() => Render("{{ required \"need x\" .x }}", Map()));
    }
}
