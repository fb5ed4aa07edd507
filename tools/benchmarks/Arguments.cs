namespace MsiProxy.Benchmarks;

/// <summary>`--name value` pairs; the harness script is the only caller, so a missing one is a plain error.</summary>
internal static class Arguments
{
    public static string Get(string[] args, string name, string? fallback = null)
    {
        var index = Array.IndexOf(args, "--" + name);
        if (index >= 0 && index + 1 < args.Length)
        {
            return args[index + 1];
        }

        return fallback ?? throw new ArgumentException($"--{name} is required");
    }

    public static int GetInt(string[] args, string name, int? fallback = null) =>
        int.Parse(Get(args, name, fallback?.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);
}
