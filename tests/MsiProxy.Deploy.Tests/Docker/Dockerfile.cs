using System.Text.Json;
using System.Text.RegularExpressions;

namespace MsiProxy.Deploy.Tests.Docker;

/// <summary>
/// A Dockerfile split into stages and instructions (line continuations joined, comments dropped, the escape
/// directive honoured), enough to know what the final image copies and runs.
/// </summary>
internal sealed partial record Dockerfile(IReadOnlyList<DockerStage> Stages)
{
    public DockerStage Final => Stages[^1];

    public static Dockerfile Load(string path)
    {
        var lines = File.ReadAllLines(path);
        var escape = lines.Select(l => EscapeDirective().Match(l)).FirstOrDefault(m => m.Success)?.Groups[1].Value[0] ?? '\\';
        var instructions = new List<DockerInstruction>();
        var current = "";
        foreach (var raw in lines)
        {
            var line = raw.TrimEnd();
            if (current.Length == 0 && (line.TrimStart().StartsWith('#') || line.Trim().Length == 0))
            {
                continue;
            }

            if (line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            if (line.EndsWith(escape))
            {
                current += line[..^1] + " ";
                continue;
            }

            current += line;
            var parts = current.Trim().Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries);
            instructions.Add(new DockerInstruction(parts[0].ToUpperInvariant(), parts.Length > 1 ? parts[1].Trim() : ""));
            current = "";
        }

        var stages = new List<DockerStage>();
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                var words = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                stages.Add(new DockerStage(words[0], words.Length == 3 ? words[2] : null, new List<DockerInstruction>()));
            }
            else if (stages.Count > 0)
            {
                ((List<DockerInstruction>)stages[^1].Instructions).Add(instruction);
            }
        }

        return new Dockerfile(stages);
    }

    [GeneratedRegex(@"^#\s*escape\s*=\s*(\S)")]
    private static partial Regex EscapeDirective();
}

internal sealed record DockerStage(string BaseImage, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<DockerInstruction> All(string keyword) => Instructions.Where(i => i.Keyword == keyword);
}

internal sealed partial record DockerInstruction(string Keyword, string Arguments)
{
    /// <summary>JSON (exec) form as a list; shell form as one string.</summary>
    public IReadOnlyList<string> ExecForm(string? strip = null)
    {
        var text = strip is null ? Arguments : Arguments[Arguments.IndexOf(strip, StringComparison.Ordinal)..][strip.Length..].Trim();
        return text.StartsWith('[') ? JsonSerializer.Deserialize<List<string>>(text)! : [text];
    }

    /// <summary>COPY/ADD: (flags such as --from, sources, destination).</summary>
    public (IReadOnlyDictionary<string, string> Flags, IReadOnlyList<string> Sources, string Destination) CopyParts()
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = Arguments;
        while (FlagPattern().Match(rest) is { Success: true } m)
        {
            flags[m.Groups[1].Value] = m.Groups[2].Value;
            rest = rest[m.Length..];
        }

        var words = rest.TrimStart().StartsWith('[')
            ? JsonSerializer.Deserialize<List<string>>(rest)!
            : rest.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        return (flags, words[..^1], words[^1]);
    }

    [GeneratedRegex(@"^\s*--([a-z]+)=(\S+)\s+")]
    private static partial Regex FlagPattern();
}
