using System.Text.RegularExpressions;
using MsiProxy.Testing;

namespace MsiProxy.UnitTests.Architecture;

/// <summary>
/// The Linux image is Native AOT, and the one trim warning its build lets through (docker/publish.props) is Serilog's
/// destructuring: a value logged as <c>{@Name}</c> has its properties read by reflection, which the trimmer cannot see,
/// so under AOT they may be missing from the log line or throw. No template of ours may ask for it.
/// </summary>
public class DestructuringTests
{
    private static readonly Regex Destructured = new(@"\{@[A-Za-z_]", RegexOptions.Compiled);

    [Fact]
    public void No_log_template_in_the_product_destructures_a_value()
    {
        var sources = Directory.GetFiles(RepositoryPaths.Combine("src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        Assert.True(sources.Count > 50, $"only {sources.Count} source files found under src");

        var offenders = sources
            .SelectMany(f => File.ReadLines(f).Select((line, i) => (File: Path.GetRelativePath(RepositoryPaths.Root, f), Line: i + 1, Text: line)))
            .Where(l => Destructured.IsMatch(l.Text))
            .Select(l => $"{l.File}:{l.Line}: {l.Text.Trim()}")
            .ToList();
        Assert.True(offenders.Count == 0, "Serilog destructuring ({@...}) in:\n" + string.Join('\n', offenders));
    }
}
