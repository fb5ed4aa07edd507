using System.Text;
using SharpFuzz;

namespace MsiProxy.Fuzz;

/// <summary>
/// Under afl-fuzz: SharpFuzz's fork server, one input per run through <see cref="Oracle.Check"/>; an exception (a
/// parser's own, or an <see cref="InvariantViolation"/>) is a crash. With <c>--check FILE|DIR…</c>: replays inputs
/// (the seed corpus, or a finding) outside the fuzzer, printing each failure, and exits with the number that failed.
/// </summary>
internal static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["--check", .. var inputs])
        {
            return Replay(inputs);
        }

        Fuzzer.OutOfProcess.Run(stream => Oracle.Check(Read(stream)));
        return 0;
    }

    /// <summary>One character per byte (Latin-1): the fuzzer reaches every character the gate can see below U+0100.</summary>
    private static string Read(Stream stream)
    {
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return Encoding.Latin1.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private static int Replay(string[] inputs)
    {
        var files = inputs.SelectMany(i => Directory.Exists(i) ? Directory.EnumerateFiles(i, "*", SearchOption.AllDirectories) : [i])
            .Where(f => !Path.GetFileName(f).Equals("README.txt", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        var failed = 0;
        foreach (var file in files)
        {
            try
            {
                using var stream = File.OpenRead(file);
                Oracle.Check(Read(stream));
            }
            catch (Exception e)
            {
                failed++;
                Console.WriteLine($"FAIL {file}: {e.GetType().Name}: {e.Message}");
                Console.WriteLine(e.StackTrace);
            }
        }

        Console.WriteLine($"{files.Count - failed} of {files.Count} inputs hold the invariants");
        return failed;
    }
}
