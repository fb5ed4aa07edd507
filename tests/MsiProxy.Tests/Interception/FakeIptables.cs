using MsiProxy.Interception;

namespace MsiProxy.Tests.Interception;

/// <summary>
/// A stand-in for iptables and iptables-restore that keeps the tables in memory, answers with iptables' exit codes
/// (0 done, 1 no such rule, 2 no such chain) and records every command line, so a test sees exactly what would run.
/// </summary>
internal sealed class FakeIptables : ICommandRunner
{
    private readonly Dictionary<string, Dictionary<string, List<string>>> _tables = new(StringComparer.Ordinal)
    {
        ["filter"] = new(StringComparer.Ordinal) { ["INPUT"] = [], ["FORWARD"] = [], ["OUTPUT"] = [] },
        ["nat"] = new(StringComparer.Ordinal) { ["PREROUTING"] = [], ["INPUT"] = [], ["OUTPUT"] = [], ["POSTROUTING"] = [] },
    };

    public List<string> Commands { get; } = [];

    /// <summary>What was piped into iptables-restore, per call.</summary>
    public List<string> RestoreInputs { get; } = [];

    /// <summary>Answer for commands whose line contains the key (e.g. "-restore" → exit 4), instead of running them.</summary>
    public Dictionary<string, CommandResult> Failures { get; } = new(StringComparer.Ordinal);

    /// <summary>A host where dockerd runs: DOCKER-USER exists and FORWARD jumps to it.</summary>
    public static FakeIptables WithDocker()
    {
        var iptables = new FakeIptables();
        iptables._tables["filter"]["DOCKER-USER"] = ["-j RETURN"];
        iptables._tables["filter"]["FORWARD"].Add("-j DOCKER-USER");
        return iptables;
    }

    public IReadOnlyList<string> Chain(string table, string chain) => _tables[table].GetValueOrDefault(chain) ?? [];

    public bool HasChain(string table, string chain) => _tables[table].ContainsKey(chain);

    public void Add(string table, string chain, string rule) => _tables[table][chain].Insert(0, rule);

    public void Flush(string table, string chain) => _tables[table][chain].Clear();

    public Task<CommandResult> RunAsync(string command, IReadOnlyList<string> arguments, string? standardInput, CancellationToken cancellationToken)
    {
        var line = command + " " + string.Join(' ', arguments.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
        Commands.Add(line);
        if (Failures.FirstOrDefault(f => line.Contains(f.Key, StringComparison.Ordinal)) is { Value: { } failure })
        {
            return Task.FromResult(failure);
        }

        return Task.FromResult(command.EndsWith("-restore", StringComparison.Ordinal) ? Restore(standardInput ?? "") : Iptables(arguments));
    }

    private CommandResult Restore(string input)
    {
        RestoreInputs.Add(input);
        Dictionary<string, List<string>>? table = null;
        foreach (var line in input.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith('*'))
            {
                table = _tables[line[1..]];
            }
            else if (line.StartsWith(':'))
            {
                table![line[1..].Split(' ')[0]] = []; // --noflush: a declared chain is created or flushed
            }
            else if (line.StartsWith("-A ", StringComparison.Ordinal))
            {
                var words = line.Split(' ', 3);
                table![words[1]].Add(words[2]);
            }
        }

        return new CommandResult(0, "", "");
    }

    private CommandResult Iptables(IReadOnlyList<string> arguments)
    {
        var words = arguments.ToList();
        Assert.Equal(["-w", "5", "-t"], words[..3]); // every call waits for the xtables lock and names its table
        var table = _tables[words[3]];
        var operation = words[4];
        var chain = words[5];
        var spec = string.Join(' ', words.Skip(operation == "-I" ? 7 : 6).Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"\"{a}\"" : a));
        if (operation == "-N")
        {
            if (!table.TryAdd(chain, []))
            {
                return new CommandResult(1, "", "iptables: Chain already exists.");
            }

            return new CommandResult(0, "", "");
        }

        if (!table.TryGetValue(chain, out var rules))
        {
            return new CommandResult(operation is "-S" or "-F" or "-X" ? 1 : 2, "", $"iptables: Chain '{chain}' does not exist");
        }

        switch (operation)
        {
            case "-S":
                return new CommandResult(0, string.Concat([$"-N {chain}\n", .. rules.Select(r => $"-A {chain} {r}\n")]), "");
            case "-C":
                return rules.Contains(spec) ? new CommandResult(0, "", "") : new CommandResult(1, "", "iptables: Bad rule (does a matching rule exist in that chain?).");
            case "-I":
                rules.Insert(0, spec);
                return new CommandResult(0, "", "");
            case "-D":
                return rules.Remove(spec) ? new CommandResult(0, "", "") : new CommandResult(1, "", "iptables: Bad rule.");
            case "-F":
                rules.Clear();
                return new CommandResult(0, "", "");
            case "-X":
                if (_tables.Values.Any(t => t.Values.Any(r => r.Any(x => x.EndsWith("-j " + chain, StringComparison.Ordinal)))))
                {
                    return new CommandResult(1, "", "iptables: Too many links.");
                }

                table.Remove(chain);
                return new CommandResult(0, "", "");
            default:
                throw new InvalidOperationException("the fake does not know " + string.Join(' ', arguments));
        }
    }
}
